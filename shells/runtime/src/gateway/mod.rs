//! The gateway: an endpoint the machine's containers depend on, probed off
//! the heartbeat's path and reported in every `worker.heartbeat`
//! (`gatewayStatus`, `gatewayStatusDetail`; see `docs/protocol.md` § Gateway).
//!
//! The owner names it (`GATEWAY_URL`, given to the builder as a
//! [`GatewayUrl`]) or the orchestrator does (`gateway` in
//! `worker.registered`, handed to [`GatewayHandle::offer`]); the owner's wins.
//! [`GatewayMonitor::run`] is one loop, raced with the session's driver: it
//! probes the current target, stores the reading, then waits for the
//! interval or a change of target. Being one loop, it never has more than one
//! probe in flight, and each probe is cut off at the timeout. The heartbeat
//! only reads the last stored reading ([`GatewayHandle::heartbeat_fields`]),
//! so a stalled gateway never delays a heartbeat.
//!
//! ```text
//!  Event::Registered{gateway} ──offer──► GatewayHandle ◄──store── GatewayMonitor::run
//!  GATEWAY_URL ─────────────────────────►  (target,         ──target──► probe::probe (≤ timeout)
//!                                           reading)  ──heartbeat_fields──► SysProbe
//! ```

mod probe;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_tungstenite::tungstenite::http::Uri;
use cropscode_core::protocol::{Gateway, GatewayStatus};
use cropscode_core::time::with_timeout;
use futures_lite::future;
use rustls::ClientConfig;
use smol::channel::{Receiver, Sender};

/// `GATEWAY_PROBE_INTERVAL`'s default: the pause between two probes.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(30);
/// `GATEWAY_TIMEOUT`'s default: the most one probe may take.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// An answer slower than this is `degraded`.
pub const SLOW_AFTER: Duration = Duration::from_secs(1);
/// The longest gateway URL accepted.
pub const MAX_GATEWAY_URL_BYTES: usize = 2048;
/// The longest `gatewayStatusDetail`.
pub const MAX_DETAIL_BYTES: usize = 128;

/// How a gateway is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayScheme {
    /// `http://`: a GET, the status line read.
    Http,
    /// `https://`: the same over TLS.
    Https,
    /// `tcp://host:port`: a connect.
    Tcp,
}

/// A checked gateway URL. `Display` and `Debug` show it without its
/// `user:password@` part and its query, so it can be logged; the userinfo
/// is never sent either.
#[derive(Clone, PartialEq, Eq)]
pub struct GatewayUrl {
    scheme: GatewayScheme,
    /// Without the brackets of an IPv6 literal.
    host: String,
    port: u16,
    /// Path and query, as sent in the request line.
    target: String,
    /// `scheme://host[:port]/path`: what may be shown.
    shown: String,
}

impl GatewayUrl {
    /// Checks `text`: `http://`, `https://` or `tcp://host:port`, at most
    /// [`MAX_GATEWAY_URL_BYTES`]. The message of an error never repeats the URL.
    ///
    /// ```
    /// use cropscode_runtime::GatewayUrl;
    ///
    /// let url = GatewayUrl::parse("https://user:pw@gw.example:8443/health?key=k").unwrap();
    /// assert_eq!(url.to_string(), "https://gw.example:8443/health");
    /// assert!(GatewayUrl::parse("tcp://db.internal:5432").is_ok());
    /// assert!(GatewayUrl::parse("tcp://db.internal").is_err());
    /// assert!(GatewayUrl::parse("ftp://gw.example/").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<GatewayUrl, String> {
        const EXPECTED: &str = "expected http://host[:port]/path, https://… or tcp://host:port";
        let text = text.trim();
        if text.len() > MAX_GATEWAY_URL_BYTES {
            return Err(format!("longer than {MAX_GATEWAY_URL_BYTES} bytes"));
        }
        let uri: Uri = text.parse().map_err(|_| format!("not a valid URL; {EXPECTED}"))?;
        let (scheme, default_port) = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http") => (GatewayScheme::Http, Some(80)),
            Some("https") => (GatewayScheme::Https, Some(443)),
            Some("tcp") => (GatewayScheme::Tcp, None),
            Some(other) if other.len() <= 16 => return Err(format!("unsupported scheme `{other}`; {EXPECTED}")),
            _ => return Err(format!("missing or unsupported scheme; {EXPECTED}")),
        };
        let authority = uri.authority().ok_or_else(|| format!("missing host; {EXPECTED}"))?;
        let bracketed = authority.host();
        let host = bracketed.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("missing host; {EXPECTED}"));
        }
        let port = authority.port_u16().or(default_port).ok_or("tcp:// needs a port: tcp://host:port")?;
        let path = uri.path();
        if scheme == GatewayScheme::Tcp && (!matches!(path, "" | "/") || uri.query().is_some()) {
            return Err("tcp:// takes no path or query: tcp://host:port".into());
        }
        let path = if path.is_empty() { "/" } else { path };
        let target = match uri.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        let scheme_text = match scheme {
            GatewayScheme::Http => "http",
            GatewayScheme::Https => "https",
            GatewayScheme::Tcp => "tcp",
        };
        let port_text = if Some(port) == default_port { String::new() } else { format!(":{port}") };
        let shown_path = if scheme == GatewayScheme::Tcp { "" } else { path };
        let shown = format!("{scheme_text}://{bracketed}{port_text}{shown_path}");
        Ok(GatewayUrl { scheme, host: host.to_owned(), port, target, shown })
    }

    /// How it is probed.
    pub fn scheme(&self) -> GatewayScheme {
        self.scheme
    }

    /// The host, without the brackets of an IPv6 literal.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `Host:` of the request: the host (bracketed if IPv6) and a non-default port.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        match (self.scheme, self.port) {
            (GatewayScheme::Http, 80) | (GatewayScheme::Https, 443) => host,
            (_, port) => format!("{host}:{port}"),
        }
    }
}

impl fmt::Display for GatewayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for GatewayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GatewayUrl({})", self.shown)
    }
}

/// What one probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayReading {
    /// The status.
    pub status: GatewayStatus,
    /// At most [`MAX_DETAIL_BYTES`]; names no URL, host or query.
    pub detail: String,
}

impl GatewayReading {
    fn new(status: GatewayStatus, detail: impl Into<String>) -> GatewayReading {
        let mut detail = detail.into();
        if detail.len() > MAX_DETAIL_BYTES {
            let mut end = MAX_DETAIL_BYTES - '…'.len_utf8();
            while !detail.is_char_boundary(end) {
                end -= 1;
            }
            detail.truncate(end);
            detail.push('…');
        }
        GatewayReading { status, detail }
    }

    fn timed_out(timeout: Duration) -> GatewayReading {
        let after = match timeout.subsec_millis() {
            0 => format!("{} s", timeout.as_secs()),
            _ => format!("{} ms", timeout.as_millis()),
        };
        GatewayReading::new(GatewayStatus::Unreachable, format!("timed out after {after}"))
    }
}

#[derive(Debug, Default)]
struct Shared {
    owner: Option<GatewayUrl>,
    offered: Option<GatewayUrl>,
    /// Bumped whenever the target changes, so a reading of the old one is dropped.
    generation: u64,
    reading: Option<GatewayReading>,
}

impl Shared {
    fn target(&self) -> Option<&GatewayUrl> {
        self.owner.as_ref().or(self.offered.as_ref())
    }
}

/// The gateway's shared state: what to probe and what the last probe saw.
/// Cheap to clone; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct GatewayHandle {
    shared: Arc<Mutex<Shared>>,
    changed: Sender<()>,
}

impl GatewayHandle {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The gateway being probed: the owner's, else the orchestrator's.
    pub fn target(&self) -> Option<GatewayUrl> {
        self.lock().target().cloned()
    }

    /// The last finished probe of the current target, if any.
    pub fn reading(&self) -> Option<GatewayReading> {
        self.lock().reading.clone()
    }

    /// `gatewayStatus` and `gatewayStatusDetail`: both `None` without a
    /// gateway, `unknown` until the first probe of the target finishes.
    pub fn heartbeat_fields(&self) -> (Option<String>, Option<String>) {
        let shared = self.lock();
        if shared.target().is_none() {
            return (None, None);
        }
        let reading = shared.reading.clone().unwrap_or(GatewayReading::new(GatewayStatus::Unknown, "not probed yet"));
        (Some(reading.status.as_str().to_owned()), Some(reading.detail))
    }

    /// The gateway a `worker.registered` named (or `None`: it named none).
    /// An unusable URL is logged and ignored; the owner's gateway, if set, wins.
    pub fn offer(&self, gateway: Option<&Gateway>) {
        let offered = gateway.and_then(|g| match GatewayUrl::parse(&g.url) {
            Ok(url) => Some(url),
            Err(error) => {
                tracing::warn!(%error, "ignoring the gateway the orchestrator named");
                None
            }
        });
        let mut shared = self.lock();
        if shared.offered == offered {
            return;
        }
        if let Some(owner) = &shared.owner {
            tracing::debug!(owner = %owner, "the orchestrator named a gateway; the owner's GATEWAY_URL wins");
            shared.offered = offered;
            return;
        }
        match &offered {
            Some(url) => tracing::info!(gateway = %url, "probing the gateway the orchestrator named"),
            None => tracing::info!("the orchestrator named no gateway; probing stopped"),
        }
        shared.offered = offered;
        shared.generation += 1;
        shared.reading = None;
        drop(shared);
        // A full channel already holds a wake-up.
        let _ = self.changed.try_send(());
    }

    fn current(&self) -> Option<(u64, GatewayUrl)> {
        let shared = self.lock();
        shared.target().map(|url| (shared.generation, url.clone()))
    }

    fn store(&self, generation: u64, reading: GatewayReading) {
        let mut shared = self.lock();
        if shared.generation == generation {
            shared.reading = Some(reading);
        }
    }
}

/// The probing loop; see the [module docs](self).
pub struct GatewayMonitor {
    handle: GatewayHandle,
    changed: Receiver<()>,
    interval: Duration,
    timeout: Duration,
    tls: Arc<ClientConfig>,
    user_agent: String,
}

impl fmt::Debug for GatewayMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayMonitor")
            .field("target", &self.handle.target())
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl GatewayMonitor {
    /// A monitor of the owner's gateway (or, without one, of whatever the
    /// orchestrator offers), probing every `interval` with at most `timeout`
    /// per probe, trusting `tls`'s roots for `https://`.
    pub(crate) fn new(
        owner: Option<GatewayUrl>,
        interval: Duration,
        timeout: Duration,
        tls: Arc<ClientConfig>,
        agent_version: &str,
    ) -> (GatewayMonitor, GatewayHandle) {
        let (changed_tx, changed) = smol::channel::bounded(1);
        let shared = Shared { owner, ..Shared::default() };
        let handle = GatewayHandle { shared: Arc::new(Mutex::new(shared)), changed: changed_tx };
        let user_agent = format!("cropscode-worker/{agent_version}");
        (GatewayMonitor { handle: handle.clone(), changed, interval, timeout, tls, user_agent }, handle)
    }

    /// Probes until dropped (it never returns).
    pub async fn run(self) {
        let GatewayMonitor { handle, changed, interval, timeout, tls, user_agent } = self;
        if let Some(url) = handle.target() {
            tracing::info!(gateway = %url, every = ?interval, "probing the gateway");
        }
        let probe = |url: GatewayUrl| {
            let (tls, user_agent) = (tls.clone(), user_agent.clone());
            async move { probe::probe(&url, &tls, &user_agent, SLOW_AFTER).await }
        };
        run_loop(&handle, &changed, interval, timeout, probe).await
    }
}

/// Probes `url` once, within `timeout`, trusting the webpki roots and
/// `ca_file` for `https://` (as the orchestrator connection does): e.g. for
/// `cropscode status`. Fails only on an unusable CA file.
pub async fn probe_gateway(
    url: &GatewayUrl,
    ca_file: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<GatewayReading, cropscode_core::TransportError> {
    let tls = crate::tls::client_config(ca_file)?;
    let user_agent = format!("cropscode-worker/{}", env!("CARGO_PKG_VERSION"));
    let probe = probe::probe(url, &tls, &user_agent, SLOW_AFTER);
    Ok(with_timeout(|| sleep(timeout), probe).await.unwrap_or_else(|| GatewayReading::timed_out(timeout)))
}

/// The loop itself, over any `probe` (tests give it one that stalls).
async fn run_loop<F, Fut>(
    handle: &GatewayHandle,
    changed: &Receiver<()>,
    interval: Duration,
    timeout: Duration,
    probe: F,
) where
    F: Fn(GatewayUrl) -> Fut,
    Fut: Future<Output = GatewayReading>,
{
    loop {
        let Some((generation, url)) = handle.current() else {
            let _ = changed.recv().await;
            continue;
        };
        let reading =
            with_timeout(|| sleep(timeout), probe(url)).await.unwrap_or_else(|| GatewayReading::timed_out(timeout));
        tracing::debug!(status = %reading.status, detail = %reading.detail, "gateway probed");
        handle.store(generation, reading);
        future::or(sleep(interval), async {
            let _ = changed.recv().await;
        })
        .await;
    }
}

async fn sleep(duration: Duration) {
    smol::Timer::after(duration).await;
}

#[cfg(test)]
mod tests;
