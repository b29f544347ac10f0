//! The HTTP/1.1 client: one engine endpoint, a small pool of kept-alive connections,
//! unary calls with a time limit, streamed answers, and upgrades.
//!
//! A request takes an idle connection from the pool (or opens one), and the connection
//! goes back to the pool only once its answer has been read to the end: an answer dropped
//! half-read closes its connection, so the pool never hands out a connection that still
//! carries someone else's bytes. Each connection is driven by a task on smol's global
//! executor; the task ends when the connection closes.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_lite::future;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header;
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::endpoint::Endpoint;
use crate::error::{EngineError, Result, api_error};
use crate::io::{HyperIo, Upgraded};
use crate::platform;

/// The Docker Engine API version the client speaks (Docker 20.10 and Podman 4 serve it).
/// Engines whose oldest accepted version is newer (Docker 29 accepts 1.44 and up) are
/// spoken to at their oldest version: every call used here means the same there.
pub const API_VERSION_MINOR: u32 = 41;

/// The largest error or unary answer body read into memory.
const MAX_UNARY_BODY: usize = 64 * 1024 * 1024;

type Sender = http1::SendRequest<Full<Bytes>>;

/// Limits of an [`EngineClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Opening a connection (and the HTTP handshake) must finish within this.
    pub connect_timeout: Duration,
    /// A unary call (request sent, whole answer read) must finish within this. Calls that
    /// wait on purpose (stop with a grace period, exec) add their own time to it.
    pub request_timeout: Duration,
    /// Idle connections kept open for reuse.
    pub max_idle_connections: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_idle_connections: 4,
        }
    }
}

/// A client of one engine's API. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct EngineClient {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    endpoint_text: String,
    config: ClientConfig,
    idle: Mutex<Vec<Sender>>,
    api_minor: AtomicU32,
    opened: AtomicU64,
}

impl std::fmt::Debug for EngineClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineClient").field("endpoint", &self.inner.endpoint_text).finish_non_exhaustive()
    }
}

/// One request to the engine, kept so that it can be sent again on a fresh connection.
#[derive(Debug, Clone)]
pub(crate) struct ApiRequest {
    method: Method,
    /// Path and query after the version prefix, e.g. `/containers/json?all=1`.
    target: String,
    versioned: bool,
    content_type: Option<&'static str>,
    body: Bytes,
    upgrade: bool,
}

impl ApiRequest {
    pub(crate) fn new(method: Method, target: impl Into<String>) -> Self {
        ApiRequest {
            method,
            target: target.into(),
            versioned: true,
            content_type: None,
            body: Bytes::new(),
            upgrade: false,
        }
    }

    pub(crate) fn get(target: impl Into<String>) -> Self {
        ApiRequest::new(Method::GET, target)
    }

    pub(crate) fn post(target: impl Into<String>) -> Self {
        ApiRequest::new(Method::POST, target)
    }

    /// Without the `/v1.xx` prefix (`/_ping`, `/version` before negotiation).
    pub(crate) fn unversioned(mut self) -> Self {
        self.versioned = false;
        self
    }

    pub(crate) fn json(mut self, body: &impl Serialize) -> Result<Self> {
        let bytes = serde_json::to_vec(body).map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        self.body = Bytes::from(bytes);
        self.content_type = Some("application/json");
        Ok(self)
    }

    pub(crate) fn tar(mut self, body: Bytes) -> Self {
        self.body = body;
        self.content_type = Some("application/x-tar");
        self
    }

    pub(crate) fn upgrade(mut self) -> Self {
        self.upgrade = true;
        self
    }

    fn operation(&self) -> String {
        let path = self.target.split('?').next().unwrap_or_default();
        format!("{} {path}", self.method)
    }

    fn to_hyper(&self, api_minor: u32) -> Result<Request<Full<Bytes>>> {
        let uri = if self.versioned { format!("/v1.{api_minor}{}", self.target) } else { self.target.clone() };
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(uri)
            .header(header::HOST, "docker")
            .header(header::USER_AGENT, concat!("cropscode-engine/", env!("CARGO_PKG_VERSION")));
        if let Some(content_type) = self.content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        if self.upgrade {
            builder = builder.header(header::CONNECTION, "Upgrade").header(header::UPGRADE, "tcp");
        }
        builder.body(Full::new(self.body.clone())).map_err(|e| EngineError::InvalidArgument(e.to_string()))
    }

    fn is_idempotent(&self) -> bool {
        matches!(self.method, Method::GET | Method::HEAD)
    }
}

impl EngineClient {
    /// A client of the engine at `endpoint`. Does no I/O: the first call connects.
    pub fn new(endpoint: Endpoint) -> Self {
        EngineClient::with_config(endpoint, ClientConfig::default())
    }

    /// A client with explicit limits.
    pub fn with_config(endpoint: Endpoint, config: ClientConfig) -> Self {
        EngineClient {
            inner: Arc::new(Inner {
                endpoint_text: endpoint.to_string(),
                endpoint,
                config,
                idle: Mutex::new(Vec::new()),
                api_minor: AtomicU32::new(API_VERSION_MINOR),
                opened: AtomicU64::new(0),
            }),
        }
    }

    /// The engine's address.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// The client's limits.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The API version in use, e.g. `"1.41"`.
    pub fn api_version(&self) -> String {
        format!("1.{}", self.inner.api_minor.load(Ordering::Relaxed))
    }

    pub(crate) fn set_api_minor(&self, minor: u32) {
        self.inner.api_minor.store(minor, Ordering::Relaxed);
    }

    /// Idle connections currently kept for reuse.
    pub fn idle_connections(&self) -> usize {
        self.inner.idle.lock().map(|idle| idle.len()).unwrap_or(0)
    }

    /// Connections opened so far (reuse shows as calls outnumbering connections).
    pub fn connections_opened(&self) -> u64 {
        self.inner.opened.load(Ordering::Relaxed)
    }

    /// Sends a request and reads the whole answer within the request time limit, plus
    /// `extra` for calls that wait on purpose. A non-success status becomes an error.
    pub(crate) async fn call(&self, request: ApiRequest, extra: Duration) -> Result<(StatusCode, Bytes)> {
        let limit = self.inner.config.request_timeout + extra;
        let operation = request.operation();
        with_timeout(operation, limit, async {
            let response = self.send(&request).await?;
            let status = response.status();
            let body = response.into_body().read_to_end(MAX_UNARY_BODY).await?;
            if status.is_success() || status == StatusCode::NOT_MODIFIED {
                Ok((status, body))
            } else {
                Err(api_error(status.as_u16(), &body))
            }
        })
        .await
    }

    /// [`call`](Self::call) and decode the JSON answer.
    pub(crate) async fn call_json<T: DeserializeOwned>(&self, request: ApiRequest) -> Result<T> {
        let operation = request.operation();
        let (_, body) = self.call(request, Duration::ZERO).await?;
        serde_json::from_slice(&body).map_err(|e| EngineError::Protocol(format!("{operation}: {e}")))
    }

    /// Sends a request whose answer is streamed: waits (within the request time limit) for
    /// the status and headers only. A non-success status becomes an error.
    pub(crate) async fn stream(&self, request: ApiRequest) -> Result<ResponseBody> {
        let limit = self.inner.config.request_timeout;
        with_timeout(request.operation(), limit, async {
            let response = self.send(&request).await?;
            let status = response.status();
            if status.is_success() {
                Ok(response.into_body())
            } else {
                let body = response.into_body().read_to_end(MAX_UNARY_BODY).await?;
                Err(api_error(status.as_u16(), &body))
            }
        })
        .await
    }

    /// Sends a request asking for the connection to be upgraded (`Upgrade: tcp`) and returns
    /// the raw connection once the engine answers `101`.
    pub(crate) async fn upgrade(&self, request: ApiRequest) -> Result<Upgraded> {
        let limit = self.inner.config.request_timeout;
        let operation = request.operation();
        with_timeout(operation.clone(), limit, async {
            let response = self.send(&request.upgrade()).await?;
            let status = response.status();
            if status != StatusCode::SWITCHING_PROTOCOLS {
                let body = response.into_body().read_to_end(MAX_UNARY_BODY).await?;
                if status.is_success() {
                    return Err(EngineError::Protocol(format!("{operation}: the engine did not upgrade ({status})")));
                }
                return Err(api_error(status.as_u16(), &body));
            }
            let upgraded = hyper::upgrade::on(response).await.map_err(|e| EngineError::Connection(e.to_string()))?;
            Ok(Upgraded::new(upgraded))
        })
        .await
    }

    /// Sends one request. A request that a reused connection could not take (it closed
    /// while idle) is sent again on a fresh connection.
    async fn send(&self, request: &ApiRequest) -> Result<Response<ResponseBody>> {
        let minor = self.inner.api_minor.load(Ordering::Relaxed);
        let mut fresh_only = false;
        loop {
            let (mut sender, reused) = self.checkout(fresh_only).await?;
            match sender.try_send_request(request.to_hyper(minor)?).await {
                Ok(response) => {
                    let upgrading = response.status() == StatusCode::SWITCHING_PROTOCOLS;
                    let lease = (!upgrading).then(|| Lease { sender, pool: Arc::downgrade(&self.inner) });
                    return Ok(response.map(|incoming| ResponseBody { incoming, lease }));
                }
                Err(mut error) => {
                    let unsent = error.take_message().is_some();
                    let error = error.into_error();
                    if reused && (unsent || (request.is_idempotent() && error.is_incomplete_message())) {
                        tracing::debug!(%error, "idle engine connection was closed; retrying on a new one");
                        fresh_only = true;
                        continue;
                    }
                    return Err(EngineError::Connection(format!("{}: {error}", request.operation())));
                }
            }
        }
    }

    /// An idle connection ready for a request, or a new one. The flag says whether it was reused.
    async fn checkout(&self, fresh_only: bool) -> Result<(Sender, bool)> {
        if !fresh_only {
            while let Some(mut sender) = self.inner.idle.lock().ok().and_then(|mut idle| idle.pop()) {
                if sender.is_closed() {
                    continue;
                }
                // The answer before was read to its end, so the connection becomes ready as
                // soon as its task has run; a connection that does not is dropped.
                let ready = future::or(async { sender.ready().await.is_ok() }, async {
                    smol::Timer::after(Duration::from_millis(200)).await;
                    false
                });
                if ready.await {
                    return Ok((sender, true));
                }
            }
        }
        Ok((self.open().await?, false))
    }

    async fn open(&self) -> Result<Sender> {
        let endpoint = &self.inner.endpoint_text;
        let limit = self.inner.config.connect_timeout;
        with_timeout(format!("connecting to {endpoint}"), limit, async {
            let stream =
                platform::connect(&self.inner.endpoint).await.map_err(|e| EngineError::connect(endpoint, &e))?;
            let (sender, connection) = http1::Builder::new()
                .handshake(HyperIo(stream))
                .await
                .map_err(|e| EngineError::Connection(format!("handshake with {endpoint}: {e}")))?;
            smol::spawn(async move {
                if let Err(error) = connection.with_upgrades().await {
                    tracing::debug!(%error, "engine connection ended");
                }
            })
            .detach();
            self.inner.opened.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(%endpoint, "opened engine connection");
            Ok(sender)
        })
        .await
    }
}

/// A connection lent to one answer; returned to the pool when the answer has been read.
struct Lease {
    sender: Sender,
    pool: std::sync::Weak<Inner>,
}

impl Lease {
    fn give_back(self) {
        let Some(inner) = self.pool.upgrade() else { return };
        if self.sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = inner.idle.lock()
            && idle.len() < inner.config.max_idle_connections
        {
            idle.push(self.sender);
        }
    }
}

/// The body of an engine's answer, read chunk by chunk.
pub struct ResponseBody {
    incoming: hyper::body::Incoming,
    lease: Option<Lease>,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl ResponseBody {
    /// The next chunk of data, or `None` at the end. Cancel-safe.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            match self.incoming.frame().await {
                None => {
                    if let Some(lease) = self.lease.take() {
                        lease.give_back();
                    }
                    return Ok(None);
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                }
                Some(Err(e)) => return Err(EngineError::Connection(e.to_string())),
            }
        }
    }

    /// Reads the rest of the body; fails if it is longer than `limit` bytes.
    pub async fn read_to_end(mut self, limit: usize) -> Result<Bytes> {
        let mut out = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            if out.len() + chunk.len() > limit {
                return Err(EngineError::Protocol(format!("answer longer than {limit} bytes")));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(out))
    }
}

/// Runs `work` or fails with a timeout after `limit`.
pub async fn with_timeout<T>(
    operation: impl Into<String>,
    limit: Duration,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let operation = operation.into();
    cropscode_core::time::with_timeout(
        || async move {
            smol::Timer::after(limit).await;
        },
        work,
    )
    .await
    .unwrap_or_else(|| Err(EngineError::timeout(operation, limit)))
}

/// Builds `?a=b&c=d` with percent-encoded values.
#[derive(Debug, Default)]
pub(crate) struct Query(String);

impl Query {
    pub(crate) fn new() -> Self {
        Query::default()
    }

    pub(crate) fn push(mut self, key: &str, value: impl AsRef<str>) -> Self {
        self.0.push(if self.0.is_empty() { '?' } else { '&' });
        self.0.push_str(key);
        self.0.push('=');
        self.0.push_str(&encode(value.as_ref(), b"-_.~"));
        self
    }

    pub(crate) fn push_json(self, key: &str, value: &impl Serialize) -> Result<Self> {
        let json = serde_json::to_string(value).map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        Ok(self.push(key, json))
    }

    pub(crate) fn finish(self) -> String {
        self.0
    }
}

/// A container id or name, or an image reference, as one path segment of a URL.
///
/// Image references keep their `/` and `:` (the engines route `/images/{name}/json` with
/// the name's slashes in place); everything outside the characters a name or reference
/// may contain is refused rather than encoded, so a crafted name cannot reach another
/// endpoint.
pub(crate) fn path_name(name: &str) -> Result<&str> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '@');
    if name.is_empty() || !name.chars().all(allowed) || name.split('/').any(|s| s == ".." || s == ".") {
        return Err(EngineError::InvalidArgument(format!("not a valid container or image name: {name:?}")));
    }
    Ok(name)
}

fn encode(value: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_encoded() {
        let q = Query::new().push("all", "1").push("filters", r#"{"label":["a=b c"]}"#).finish();
        assert_eq!(q, "?all=1&filters=%7B%22label%22%3A%5B%22a%3Db%20c%22%5D%7D");
        assert_eq!(Query::new().finish(), "");
    }

    #[test]
    fn names_cannot_leave_their_path_segment() {
        assert!(path_name("cropscode-test/busybox:latest").is_ok());
        assert!(path_name("127.0.0.1:5000/a/b@sha256:00ff").is_ok());
        assert!(path_name("c0ffee").is_ok());
        for bad in ["", "a?b", "a/../b", "..", "a b", "a#b", "a%2Fb", "x\n"] {
            assert!(path_name(bad).is_err(), "{bad:?}");
        }
    }
}
