//! A tiny HTTP/1.1 endpoint on loopback: the console page, a JSON API for it
//! and for `curl` (see `README.md` and `console/API.md`), and the console's
//! WebSocket upgrade.
//!
//! Deliberately minimal and bounded: one request per connection
//! (`Connection: close`), request line + headers ≤ 16 KiB, a body only with
//! `Content-Length` and ≤ 1 MiB, 10 s to send the request, at most 32
//! connections at once (console WebSockets and long polls included).
//!
//! Every request is checked first, in this order (`check`): `Host` is this
//! endpoint on loopback (DNS rebinding), `Origin`, when present, is the page's
//! own, the per-run secret (`Authorization: Bearer`, or the `key.` WebSocket
//! subprotocol; not for the page and its assets), and a `POST` is
//! `application/json`. No CORS header is ever sent, so no other page can read
//! an answer or get a request past these checks.
//!
//! - `GET /`, `GET /assets/NAME` → the console page (`assets.rs`);
//! - `GET /workers` → the connected, registered workers;
//! - `GET /events?since=N&waitMs=W` → events with `seq >= N` (at most 1000, ~4 MiB) and the
//!   `next` cursor, waiting up to `W` ms for one;
//! - `POST /workers/{id}/commands` with `{"type", "params", "timeoutMs", "id"?, "async"?}` → the
//!   result frame (or `202 {"id"}` at once with `"async": true`);
//! - `POST /test/drop-worker-connections` (test hooks only) → `{"dropped": N}`;
//! - `GET /console/ws` → the console's WebSocket (`console.rs`).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_net::{Shutdown, TcpListener, TcpStream};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use serde_json::{Value, json};
use smol::Timer;

use crate::assets::{self, security_headers};
use crate::console::{self, SUBPROTOCOL};
use crate::error::OrchestratorError;
use crate::event::{Event, TimedEvent, print_summary};
use crate::shared::{Shared, bearer_token, with_timeout};

const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_BODY_BYTES: usize = 1024 * 1024;
const MAX_CONNECTIONS: usize = 32;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 30_000;
const MAX_COMMAND_TIMEOUT_MS: u64 = 10 * 60 * 1000;
const MAX_EVENTS_PER_RESPONSE: usize = 1000;
const EVENT_RESPONSE_BUDGET_BYTES: usize = 4 * 1024 * 1024;
const MAX_EVENT_WAIT_MS: u64 = 30_000;
const CONSOLE_PATH: &str = "/console/ws";

pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let active = Arc::new(AtomicUsize::new(0));
    let Ok(local) = listener.local_addr() else { return };
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accepting an HTTP connection failed");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = Slot::take(&active);
        let task = smol::spawn(serve(shared.clone(), stream, slot, local));
        shared.keep_task(task);
    }
}

/// One of the `MAX_CONNECTIONS` places; `busy` when none was free.
struct Slot {
    active: Arc<AtomicUsize>,
    busy: bool,
}

impl Slot {
    fn take(active: &Arc<AtomicUsize>) -> Slot {
        let before = active.fetch_add(1, Ordering::SeqCst);
        Slot { active: active.clone(), busy: before >= MAX_CONNECTIONS }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    /// Header names in lower case, values trimmed, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Bytes read past the body (only a WebSocket client may send them, right after its upgrade).
    rest: Vec<u8>,
}

impl Request {
    /// The header's value: `None` when absent, `Some(None)` when sent more than once.
    fn single(&self, name: &str) -> Option<Option<&str>> {
        let mut values = self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let first = values.next()?;
        Some(if values.next().is_none() { Some(first) } else { None })
    }

    /// Every comma-separated item of every `name` header.
    fn items<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers.iter().filter(move |(n, _)| n == name).flat_map(|(_, v)| v.split(',')).map(str::trim)
    }
}

struct Reply {
    status: u16,
    content_type: &'static str,
    body: Cow<'static, [u8]>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        let mut bytes = body.to_string().into_bytes();
        bytes.push(b'\n');
        Reply { status, content_type: "application/json", body: Cow::Owned(bytes) }
    }

    fn ok(body: Value) -> Reply {
        Reply::json(200, body)
    }

    fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::json(status, json!({ "error": message.into() }))
    }
}

async fn serve(shared: Arc<Shared>, mut stream: TcpStream, slot: Slot, local: SocketAddr) {
    let reply = if slot.busy {
        Reply::error(503, "too many connections")
    } else {
        match with_timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await {
            None => Reply::error(408, "the request took too long"),
            Some(Err(reply)) => reply,
            Some(Ok(request)) => match check(&shared, &request, local) {
                Err(reply) => reply,
                Ok(()) if request.path == CONSOLE_PATH => match upgrade(&request) {
                    Ok((key, subprotocol)) => {
                        let key = key.to_string();
                        console::serve(shared, stream, &key, subprotocol, request.rest).await;
                        return;
                    }
                    Err(reply) => reply,
                },
                Ok(()) => route(&shared, request).await,
            },
        }
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        reply.status,
        reason(reply.status),
        reply.content_type,
        reply.body.len(),
        security_headers(local.port()),
    );
    let written = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&reply.body).await?;
        stream.flush().await
    };
    if with_timeout(REQUEST_TIMEOUT, written).await.is_none() {
        return;
    }
    // Half-close, then drain what the client still sends (e.g. a refused body):
    // closing with unread data would reset the connection and could lose the reply.
    let _ = stream.shutdown(Shutdown::Write);
    let mut sink = [0u8; 4096];
    let _ = with_timeout(Duration::from_secs(1), async {
        let mut drained = 0;
        while drained < MAX_BODY_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// The checks of `console/API.md` § 2, in its order; the first that fails answers.
/// Messages name what is wrong, never the secret.
fn check(shared: &Shared, request: &Request, local: SocketAddr) -> Result<(), Reply> {
    let port = local.port();
    let ours = |value: &str, prefix: &str| {
        let value = value.to_ascii_lowercase();
        value == format!("{prefix}127.0.0.1:{port}")
            || value == format!("{prefix}localhost:{port}")
            || value == format!("{prefix}{local}")
    };
    if !matches!(request.single("host"), Some(Some(host)) if ours(host, "")) {
        return Err(Reply::error(403, format!("the Host header must be 127.0.0.1:{port} or localhost:{port}")));
    }
    match request.single("origin") {
        None => {}
        Some(Some(origin)) if ours(origin, "http://") => {}
        _ => return Err(Reply::error(403, "requests from other origins are refused")),
    }
    let public = request.method == "GET" && (request.path == "/" || request.path.starts_with("/assets/"));
    if !public {
        let authorized = if request.path == CONSOLE_PATH {
            // Browsers cannot set headers on a WebSocket: the key travels as a subprotocol.
            request
                .items("sec-websocket-protocol")
                .filter_map(|p| p.strip_prefix("key."))
                .fold(false, |found, key| found | shared.accepts_http_secret(key))
        } else {
            matches!(request.single("authorization"), Some(Some(value))
                if bearer_token(value).is_some_and(|token| shared.accepts_http_secret(token)))
        };
        if !authorized {
            let how = if request.path == CONSOLE_PATH {
                "the subprotocol `key.<key>`"
            } else {
                "`Authorization: Bearer <key>`"
            };
            return Err(Reply::error(
                401,
                format!("missing or wrong key: send {how} with the key of the URL `cropscode dev` printed"),
            ));
        }
    }
    if request.method == "POST" {
        let json = matches!(request.single("content-type"), Some(Some(value))
            if value.split(';').next().is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json")));
        if !json {
            return Err(Reply::error(415, "the body must be sent as Content-Type: application/json"));
        }
    }
    Ok(())
}

/// The `Sec-WebSocket-Key` of a WebSocket upgrade request, and whether the page's subprotocol was offered.
fn upgrade(request: &Request) -> Result<(&str, bool), Reply> {
    let websocket = request.items("upgrade").any(|u| u.eq_ignore_ascii_case("websocket"));
    let version = request.single("sec-websocket-version") == Some(Some("13"));
    match (request.method.as_str(), websocket, version, request.single("sec-websocket-key")) {
        ("GET", true, true, Some(Some(key))) if !key.is_empty() => {
            Ok((key, request.items("sec-websocket-protocol").any(|p| p == SUBPROTOCOL)))
        }
        ("GET", ..) => Err(Reply::error(400, "GET /console/ws is a WebSocket (version 13) upgrade")),
        _ => Err(Reply::error(405, "method not allowed")),
    }
}

async fn read_request(stream: &mut TcpStream) -> Result<Request, Reply> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(Reply::error(431, "request line and headers exceed 16 KiB"));
        }
        let n = stream.read(&mut chunk).await.map_err(|e| Reply::error(400, format!("read error: {e}")))?;
        if n == 0 {
            return Err(Reply::error(400, "incomplete request"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if head_end > MAX_HEAD_BYTES {
        return Err(Reply::error(431, "request line and headers exceed 16 KiB"));
    }
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| Reply::error(400, "request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (request_line.next(), request_line.next(), request_line.next(), request_line.next())
    else {
        return Err(Reply::error(400, "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(Reply::error(505, "HTTP/1.x only"));
    }
    let mut content_length = 0usize;
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(Reply::error(400, "malformed header line"));
        };
        let value = value.trim();
        headers.push((name.trim().to_ascii_lowercase(), value.to_string()));
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().map_err(|_| Reply::error(400, "bad Content-Length"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Reply::error(501, "only Content-Length bodies are supported"));
        }
    }
    if content_length > MAX_BODY_BYTES {
        return Err(Reply::error(413, "the body exceeds 1 MiB"));
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < content_length {
        let n = stream.read(&mut chunk).await.map_err(|e| Reply::error(400, format!("read error: {e}")))?;
        if n == 0 {
            return Err(Reply::error(400, "the body is shorter than Content-Length"));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let rest = body.split_off(content_length);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Request { method: method.to_string(), path: path.to_string(), query: query.to_string(), headers, body, rest })
}

async fn route(shared: &Shared, request: Request) -> Reply {
    if request.method == "GET"
        && let Some(asset) = assets::find(&request.path)
    {
        return Reply { status: 200, content_type: asset.content_type, body: Cow::Borrowed(asset.bytes) };
    }
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", [""]) if !assets::EMBEDDED => Reply::error(404, "this build has no console (cargo feature `console`)"),
        ("GET", ["assets", ..]) => Reply::error(404, "no such asset"),
        ("GET", ["workers"]) => Reply::ok(workers_json(shared)),
        ("GET", ["events"]) => match (query_u64(&request.query, "since"), query_u64(&request.query, "waitMs")) {
            (Ok(since), Ok(wait_ms)) => {
                let since = since.unwrap_or(0);
                let wait_ms = wait_ms.unwrap_or(0).min(MAX_EVENT_WAIT_MS);
                if wait_ms > 0 {
                    shared.wait_for_seq(since, Duration::from_millis(wait_ms)).await;
                }
                Reply::ok(events_json(shared, since))
            }
            (Err(reply), _) | (_, Err(reply)) => reply,
        },
        ("POST", ["workers", id, "commands"]) => match percent_decode(id) {
            Some(worker_id) => command(shared, &worker_id, &request.body).await,
            None => Reply::error(400, "bad percent-encoding in the worker id"),
        },
        ("POST", ["test", "drop-worker-connections"]) if shared.test_hooks => {
            Reply::ok(json!({ "dropped": shared.drop_worker_connections() }))
        }
        ("OPTIONS", _) | (_, ["workers"] | ["events"] | ["workers", _, "commands"] | [""] | ["assets", ..]) => {
            Reply::error(405, "method not allowed")
        }
        _ => Reply::error(404, "no such endpoint; try GET /workers, GET /events?since=0, POST /workers/{id}/commands"),
    }
}

async fn command(shared: &Shared, worker_id: &str, body: &[u8]) -> Reply {
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        return Reply::error(400, "the body must be a JSON object {\"type\", \"params\", \"timeoutMs\"}");
    };
    let Some(kind) = request.get("type").and_then(Value::as_str) else {
        return Reply::error(400, "missing string `type`");
    };
    let params = request.get("params").cloned().unwrap_or_else(|| json!({}));
    let timeout_ms = match request.get("timeoutMs") {
        None => DEFAULT_COMMAND_TIMEOUT_MS,
        Some(value) => match value.as_u64() {
            Some(ms) => ms.min(MAX_COMMAND_TIMEOUT_MS),
            None => return Reply::error(400, "`timeoutMs` must be a non-negative integer"),
        },
    };
    let timeout = Duration::from_millis(timeout_ms);
    let id = match request.get("id") {
        None => None,
        Some(Value::String(id)) => Some(id.as_str()),
        Some(_) => return Reply::error(400, "`id` must be a string"),
    };
    match request.get("async") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            return match shared.send_command(worker_id, id, kind, params).await {
                Ok(id) => Reply::json(202, json!({ "id": id })),
                Err(error @ OrchestratorError::UnknownWorker(_)) => Reply::error(404, error.to_string()),
                Err(error) => Reply::error(503, error.to_string()),
            };
        }
        Some(_) => return Reply::error(400, "`async` must be a boolean"),
    }
    let outcome = match id {
        None => shared.command(worker_id, kind, params, timeout).await,
        Some(id) => shared.command_with_id(worker_id, id, kind, params, timeout).await,
    };
    match outcome {
        Ok(result) => {
            let mut frame = json!({ "type": "result" });
            if let (Value::Object(frame), Ok(Value::Object(fields))) = (&mut frame, serde_json::to_value(&result)) {
                frame.extend(fields);
            }
            Reply::ok(frame)
        }
        Err(error @ OrchestratorError::UnknownWorker(_)) => Reply::error(404, error.to_string()),
        Err(error @ OrchestratorError::Timeout) => Reply::error(504, error.to_string()),
        Err(error) => Reply::error(503, error.to_string()),
    }
}

fn workers_json(shared: &Shared) -> Value {
    let now = Instant::now();
    let workers: Vec<Value> = shared
        .workers()
        .into_iter()
        .map(|w| {
            json!({
                "workerId": w.worker_id,
                "connection": w.connection,
                "register": w.register,
                "lastHeartbeat": w.last_heartbeat,
                "lastHeartbeatAgoMs": w.last_heartbeat_at.map(|at| millis(now - at)),
                "connectedForMs": millis(now - w.connected_at),
                "registeredForMs": millis(now - w.registered_at),
            })
        })
        .collect();
    Value::Array(workers)
}

fn events_json(shared: &Shared, since: u64) -> Value {
    let (events, next_seq) = shared.events_since(since, MAX_EVENTS_PER_RESPONSE);
    let mut budget = EVENT_RESPONSE_BUDGET_BYTES;
    let mut listed = Vec::with_capacity(events.len());
    let mut next = next_seq;
    for timed in events {
        let size = match &timed.event {
            Event::Frame { text, .. } | Event::Sent { text, .. } => text.len(),
            _ => 64,
        };
        if !listed.is_empty() && size > budget {
            next = timed.seq;
            break;
        }
        budget = budget.saturating_sub(size);
        next = timed.seq + 1;
        listed.push(event_json(shared, &timed));
    }
    if listed.is_empty() {
        next = next_seq;
    }
    json!({ "events": listed, "next": next })
}

fn event_json(shared: &Shared, timed: &TimedEvent) -> Value {
    let event = match &timed.event {
        Event::Upgrade { authorized, token_in_url } => {
            json!({ "kind": "upgrade", "authorized": authorized, "tokenInUrl": token_in_url })
        }
        Event::Registered { connection, worker_id, register } => {
            json!({ "kind": "registered", "connection": connection, "workerId": worker_id, "register": register })
        }
        Event::Heartbeat { connection, worker_id, heartbeat } => {
            json!({ "kind": "heartbeat", "connection": connection, "workerId": worker_id, "heartbeat": heartbeat })
        }
        Event::Frame { connection, worker_id, text } => {
            json!({ "kind": "frame", "connection": connection, "workerId": worker_id, "text": text })
        }
        Event::Sent { connection, worker_id, text } => {
            json!({ "kind": "sent", "connection": connection, "workerId": worker_id, "text": text })
        }
        Event::Binary { connection, bytes } => {
            json!({ "kind": "binary", "connection": connection, "len": bytes.len() })
        }
        Event::Disconnected { connection } => json!({ "kind": "disconnected", "connection": connection }),
    };
    let at_ms = millis(timed.at.saturating_duration_since(shared.started_at));
    json!({ "seq": timed.seq, "atMs": at_ms, "summary": print_summary(&timed.event), "event": event })
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn query_u64(query: &str, key: &str) -> Result<Option<u64>, Reply> {
    for pair in query.split('&') {
        if let Some((name, value)) = pair.split_once('=')
            && name == key
        {
            return value.parse().map(Some).map_err(|_| Reply::error(400, format!("`{key}` must be an integer")));
        }
    }
    Ok(None)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("w-1").as_deref(), Some("w-1"));
        assert_eq!(percent_decode("pi%20kitchen").as_deref(), Some("pi kitchen"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
    }

    #[test]
    fn reads_query_integers() {
        assert_eq!(query_u64("since=5", "since").ok().flatten(), Some(5));
        assert_eq!(query_u64("a=1&since=7", "since").ok().flatten(), Some(7));
        assert_eq!(query_u64("", "since").ok().flatten(), None);
        assert!(query_u64("since=x", "since").is_err());
    }
}
