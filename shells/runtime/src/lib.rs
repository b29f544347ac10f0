//! The smol shell of the cropscode worker: the real socket, clock, machine
//! figures and signals around the sans-I/O core.
//!
//! Each module implements one of core's boundaries:
//!
//! - [`transport`]: [`WsConnector`] / [`WsTransport`] — WebSocket over TCP or
//!   TLS (rustls with `ring`), token in the `Authorization` header;
//! - [`url`]: [`validate_url`] — `wss://`, or `ws://` to loopback only;
//! - `tls`: trust roots (webpki plus an optional CA file);
//! - [`clock`]: [`SmolClock`] — monotonic milliseconds and smol timers;
//! - [`probe`]: [`SysProbe`] and [`system_info`] — heartbeat and registration figures;
//! - [`signal`]: [`shutdown_signal`] — SIGINT/SIGTERM as a future;
//! - [`audit`]: [`AuditLog`] — the append-only audit log under `DATA_DIR/audit`.
//!
//! [`run_worker`] puts them together: it builds the connector, clock and
//! probe from [`WorkerOptions`], makes a core [`Session`] and drives it with
//! [`cropscode_core::run`] on the current thread until `shutdown` resolves.
//!
//! ```text
//!             ┌──────────── cropscode_core::run(session, …) ─────────────┐
//!  socket ◄──►│ WsTransport ◄─ WsConnector     SmolClock     SysProbe    │──► on_event
//!             │                   Engine (commands, run concurrently)    │
//!             └──────────────────────────────────────────────────────────┘
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use cropscode_core::protocol::Register;
use cropscode_core::{Clock, Engine, Event, Secret, Session, SessionConfig, TransportError};

pub mod audit;
pub mod clock;
pub mod probe;
pub mod signal;
mod tls;
pub mod transport;
pub mod url;

pub use audit::AuditLog;
pub use clock::SmolClock;
pub use probe::{SysProbe, SystemInfo, system_info};
pub use signal::{ShutdownSignal, shutdown_signal};
pub use transport::{DEFAULT_CONNECT_TIMEOUT, USER_AGENT_VALUE, WsConnector, WsTransport};
pub use url::{WsUrl, validate_url};

/// Everything [`run_worker`] needs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Orchestrator URL (`ORCHESTRATOR_WS_URL`): `wss://`, or `ws://` to loopback.
    pub url: String,
    /// The worker token, sent as `Authorization: Bearer` on every upgrade.
    pub token: Secret,
    /// Extra CA certificates (PEM) to trust (`ORCHESTRATOR_CA_FILE`).
    pub ca_file: Option<PathBuf>,
    /// Longest time one connection attempt may take (10 s by default).
    pub connect_timeout: Duration,
    /// Data directory (`DATA_DIR`); heartbeats report the disk holding it.
    pub data_dir: PathBuf,
    /// Timers and bounds of the session.
    pub session: SessionConfig,
    /// The registration sent on every connection. Its `limits` are replaced
    /// by `session.limits`, so the worker announces the bounds it applies.
    pub register: Register,
    /// Running containers, kept up to date by the engine layer and reported
    /// in every heartbeat.
    pub containers_running: Arc<AtomicU32>,
}

impl WorkerOptions {
    /// Options with the defaults for everything not given: no extra CA, a
    /// 10 s connect timeout, the default session, no running containers.
    pub fn new(url: impl Into<String>, token: Secret, data_dir: impl Into<PathBuf>, register: Register) -> Self {
        WorkerOptions {
            url: url.into(),
            token,
            ca_file: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            data_dir: data_dir.into(),
            session: SessionConfig::default(),
            register,
            containers_running: Arc::new(AtomicU32::new(0)),
        }
    }
}

/// Why [`run_worker`] could not start. Once running, it only returns on shutdown.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunError {
    /// The URL, the CA file or the token cannot be used.
    Connector(TransportError),
    /// The machine's figures cannot be read.
    Probe(io::Error),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Connector(error) => fmt::Display::fmt(error, f),
            RunError::Probe(error) => write!(f, "system probe: {error}"),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Connector(error) => Some(error),
            RunError::Probe(error) => Some(error),
        }
    }
}

impl From<TransportError> for RunError {
    fn from(error: TransportError) -> Self {
        RunError::Connector(error)
    }
}

/// Runs the worker on the current thread until `shutdown` resolves (then the
/// session sends a normal close and this returns `Ok`).
///
/// `on_event` sees every session [`Event`] — e.g. `Registered { worker_id }`
/// to persist `worker.json`, `BackingOff` to log. Fails only at startup: an
/// unusable URL, CA file or token, or no system figures.
///
/// ```no_run
/// # fn demo(engine: impl cropscode_core::Engine, register: cropscode_core::protocol::Register)
/// #     -> Result<(), Box<dyn std::error::Error>> {
/// use cropscode_core::Secret;
/// use cropscode_runtime::{WorkerOptions, run_worker, shutdown_signal};
///
/// let options = WorkerOptions::new("wss://orchestrator.example.com/worker", Secret::new("tok"), "/var/lib/cropscode", register);
/// run_worker(options, &engine, &mut |event| tracing::info!(?event), shutdown_signal()?)?;
/// # Ok(()) }
/// ```
pub fn run_worker<E: Engine>(
    options: WorkerOptions,
    engine: &E,
    on_event: &mut dyn FnMut(&Event),
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    smol::block_on(run_worker_async(options, engine, on_event, shutdown))
}

/// [`run_worker`] as a future, for callers that already run an executor
/// (it needs smol's reactor, which `smol::block_on` and smol's executors drive).
pub async fn run_worker_async<E: Engine>(
    options: WorkerOptions,
    engine: &E,
    on_event: &mut dyn FnMut(&Event),
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let WorkerOptions { url, token, ca_file, connect_timeout, data_dir, mut session, mut register, containers_running } =
        options;
    if session.streams.id_seed == 0 {
        // Terminal session ids must not repeat across worker runs: a stale re-attach
        // would otherwise name a new session.
        session.streams.id_seed = stream_id_seed();
    }
    let mut connector = WsConnector::new(&url, token)?.with_connect_timeout(connect_timeout);
    if let Some(ca_file) = &ca_file {
        connector = connector.with_ca_file(ca_file)?;
    }
    let mut probe = SysProbe::new(&data_dir, containers_running).map_err(RunError::Probe)?;
    let clock = SmolClock::new();
    register.limits = session.limits;
    let mut session = Session::new(session, register, clock.now());
    tracing::info!(url = %connector.url(), "worker starting");
    cropscode_core::run(&mut session, &connector, engine, &clock, &mut probe, on_event, shutdown).await;
    Ok(())
}

/// Differs between worker runs (start time and process id), for session ids.
fn stream_id_seed() -> u64 {
    let micros = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros();
    (micros as u64) ^ (u64::from(std::process::id()) << 52)
}
