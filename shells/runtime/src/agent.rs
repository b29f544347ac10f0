//! [`Agent`]: the whole worker assembled from its configuration and an engine.
//!
//! In the manner of quinn's `Endpoint` builder, [`AgentBuilder`] takes what
//! only the caller knows (the orchestrator's URL and token, the data
//! directory, the owner's floor, the timings) and [`AgentBuilder::build`]
//! wires everything correctness depends on, so no caller has to:
//!
//! - the engine goes behind the floor ([`PolicedEngine`], given the floor once);
//! - `worker.register` is built from the machine ([`system_info`]), the name
//!   (default: the hostname), the mode, the agent version, the engines and the
//!   `workerId` stored in `worker.json`; its `limits` are the session's;
//! - every `worker.registered` rewrites `worker.json` atomically (the engine is
//!   told the id by [`cropscode_core::run`] through [`Engine::registered`]);
//! - every [`Event::Audit`] goes to the audit log (`DATA_DIR/audit/audit.jsonl`);
//! - the backoff jitter and the stream-id seed differ per run unless given;
//! - heartbeats carry the machine's figures ([`SysProbe`]) and the engine's
//!   running-container count ([`Engine::containers_running`]);
//! - the gateway (the owner's [`AgentBuilder::gateway_url`], else the one
//!   `worker.registered` names) is probed by a [`GatewayMonitor`] raced with
//!   the driver, and heartbeats carry its last reading.
//! - the loop's pulse ([`health`](crate::health)), with systemd told `READY=1`,
//!   the link's `STATUS=` and `STOPPING=1` and its watchdog fed only while the
//!   loop turns ([`notify`](crate::notify)); `DATA_DIR/worker.sock` for
//!   `cropscode status`; and, when asked for ([`AgentBuilder::health_addr`]), the
//!   health listener (`/healthz`, `/readyz`, `/metrics`).
//!
//! ```text
//!  AgentBuilder ──build(engine)──► Agent ──run(shutdown)──► cropscode_core::run
//!     url, token, data_dir          WsConnector, SmolClock, SysProbe,
//!     name, mode, policy, …         PolicedEngine<E>, Register, AuditLog, worker.json
//!                                                   │ every Event
//!                                                   ▼
//!                          worker.json / audit log, then the caller's on_event
//! ```

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cropscode_core::policy::{PolicedEngine, Policy, SecurityFloor};
use cropscode_core::protocol::{Mode, PROTOCOL_VERSION, Register};
use cropscode_core::{Clock, Engine, Event, Secret, Session, SessionConfig, TransportError};

use crate::gateway::{self, GatewayHandle, GatewayMonitor, GatewayUrl};
use crate::health::{self, EngineCheck, Health, Link, ObservedConnector, ObservedEngine, ObservedProbe};
use crate::notify::Notifier;
use crate::state::{self, WORKER_STATE_FILE, WorkerState};
use crate::{AuditLog, DEFAULT_CONNECT_TIMEOUT, SmolClock, SysProbe, WsConnector, system_info};

/// The caller's view of every session event (after the agent's own handling).
type OnEvent = Box<dyn FnMut(&Event) + Send>;

/// The configuration of an [`Agent`]; see the [module docs](self).
///
/// ```no_run
/// # fn demo(engine: impl cropscode_core::Engine) -> Result<(), Box<dyn std::error::Error>> {
/// use cropscode_core::Secret;
/// use cropscode_core::policy::{Policy, SecurityFloor};
/// use cropscode_runtime::{Agent, shutdown_signal};
///
/// let agent = Agent::builder("wss://orchestrator.example.com/worker", Secret::new("tok"), "/var/lib/cropscode")
///     .name("pi-kitchen")
///     .policy(Policy::new(SecurityFloor::Restricted))
///     .on_event(|event| tracing::debug!(?event))
///     .build(engine)?;
/// agent.run(shutdown_signal()?);
/// # Ok(()) }
/// ```
pub struct AgentBuilder {
    url: String,
    token: Secret,
    data_dir: PathBuf,
    worker_state: Option<PathBuf>,
    /// `worker.json` once read (by `stored_worker_id` or `build`), so it is read once.
    stored: std::cell::OnceCell<Option<WorkerState>>,
    name: Option<String>,
    mode: Mode,
    policy: Policy,
    session: SessionConfig,
    ca_file: Option<PathBuf>,
    connect_timeout: Duration,
    agent_version: String,
    container_engines: Vec<String>,
    on_event: Option<OnEvent>,
    gateway: Option<GatewayUrl>,
    gateway_interval: Duration,
    gateway_timeout: Duration,
    health_addr: Option<SocketAddr>,
    health_allow_remote: bool,
    engine_check: Option<EngineCheck>,
    status_socket: bool,
    sd_notify: bool,
}

impl fmt::Debug for AgentBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentBuilder")
            .field("url", &self.url)
            .field("token", &self.token)
            .field("data_dir", &self.data_dir)
            .field("name", &self.name)
            .field("mode", &self.mode)
            .field("floor", &self.policy.floor())
            .finish_non_exhaustive()
    }
}

impl AgentBuilder {
    /// An agent for the orchestrator at `url` (`wss://`, or `ws://` to loopback),
    /// authenticated by `token`, keeping its files in `data_dir`. Defaults: the
    /// hostname as name, BYOM mode, the `baseline` floor, the default session,
    /// webpki roots only, a 10 s connect timeout, this crate's version, no engines
    /// listed, `data_dir/worker.json`.
    pub fn new(url: impl Into<String>, token: Secret, data_dir: impl Into<PathBuf>) -> AgentBuilder {
        AgentBuilder {
            url: url.into(),
            token,
            data_dir: data_dir.into(),
            worker_state: None,
            stored: std::cell::OnceCell::new(),
            name: None,
            mode: Mode::Byom,
            policy: Policy::new(SecurityFloor::Baseline),
            session: SessionConfig::default(),
            ca_file: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            agent_version: env!("CARGO_PKG_VERSION").into(),
            container_engines: Vec::new(),
            on_event: None,
            gateway: None,
            gateway_interval: gateway::DEFAULT_PROBE_INTERVAL,
            gateway_timeout: gateway::DEFAULT_PROBE_TIMEOUT,
            health_addr: None,
            health_allow_remote: false,
            engine_check: None,
            status_socket: true,
            sd_notify: true,
        }
    }

    /// The worker's name in `worker.register` (default: the hostname).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// BYOM or fleet (default BYOM).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The owner's security floor and its settings (default `baseline`). The
    /// engine sees only what it accepts, and is told its floor once.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Timers and bounds of the session. A zero `backoff.seed` or
    /// `streams.id_seed` is replaced by a per-run seed.
    pub fn session(mut self, session: SessionConfig) -> Self {
        self.session = session;
        self
    }

    /// Extra CA certificates (PEM) to trust besides the webpki roots.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Longest time one connection attempt may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// `agentVersion` in `worker.register` (default: this crate's version).
    pub fn agent_version(mut self, version: impl Into<String>) -> Self {
        self.agent_version = version.into();
        self
    }

    /// `containerEngines` in `worker.register`, e.g. `["podman", "docker"]`.
    pub fn container_engines(mut self, engines: Vec<String>) -> Self {
        self.container_engines = engines;
        self
    }

    /// The owner's gateway (`GATEWAY_URL`): probed and reported in every
    /// heartbeat; it wins over one `worker.registered` names. Without it the
    /// worker probes the orchestrator's, if any.
    pub fn gateway_url(mut self, url: GatewayUrl) -> Self {
        self.gateway = Some(url);
        self
    }

    /// The pause between two gateway probes (default 30 s).
    pub fn gateway_probe_interval(mut self, interval: Duration) -> Self {
        self.gateway_interval = interval;
        self
    }

    /// The most one gateway probe may take (default 5 s).
    pub fn gateway_timeout(mut self, timeout: Duration) -> Self {
        self.gateway_timeout = timeout;
        self
    }

    /// Where the registration state lives (default `data_dir/worker.json`).
    pub fn worker_state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.worker_state = Some(path.into());
        self.stored = std::cell::OnceCell::new();
        self
    }

    /// Called with every session [`Event`], after the agent has stored
    /// `worker.json` or the audit record it carries: for the caller's logs.
    pub fn on_event(mut self, on_event: impl FnMut(&Event) + Send + 'static) -> Self {
        self.on_event = Some(Box::new(on_event));
        self
    }

    /// Serves `/healthz`, `/readyz` and `/metrics` on `addr` (off by default); see
    /// [`health::http`]. Loopback only unless [`health_allow_remote`](Self::health_allow_remote).
    pub fn health_addr(mut self, addr: SocketAddr) -> Self {
        self.health_addr = Some(addr);
        self
    }

    /// Lets the health listener bind a non-loopback address (default: refused at build).
    pub fn health_allow_remote(mut self, allow: bool) -> Self {
        self.health_allow_remote = allow;
        self
    }

    /// How the agent asks its engine whether it answers, for `/readyz` and
    /// `cropscode status` (default none: readiness is the registration alone). Run
    /// every 5 s while the health listener is on, and on every status request,
    /// bounded by 5 s.
    pub fn engine_check<F, Fut>(mut self, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        self.engine_check = Some(Arc::new(move || Box::pin(check())));
        self
    }

    /// Whether to serve the live state on `DATA_DIR/worker.sock` (unix; default on).
    pub fn status_socket(mut self, serve: bool) -> Self {
        self.status_socket = serve;
        self
    }

    /// Whether to speak systemd's notification protocol when `NOTIFY_SOCKET` is set
    /// (default on); see [`notify`](crate::notify).
    pub fn sd_notify(mut self, notify: bool) -> Self {
        self.sd_notify = notify;
        self
    }

    /// The `workerId` of the last registration (from `worker.json`), which the
    /// agent announces; e.g. for an engine that must know it before starting.
    pub fn stored_worker_id(&self) -> Option<String> {
        self.stored().as_ref().map(|s| s.worker_id.clone())
    }

    fn stored(&self) -> &Option<WorkerState> {
        self.stored.get_or_init(|| stored_state(&self.worker_state_path()))
    }

    fn worker_state_path(&self) -> PathBuf {
        self.worker_state.clone().unwrap_or_else(|| self.data_dir.join(WORKER_STATE_FILE))
    }

    /// Assembles the agent around `engine` (put behind the policy here). Fails
    /// on an unusable URL, CA file or token, a data directory that cannot be
    /// created, or no system figures.
    pub fn build<E: Engine>(self, engine: E) -> Result<Agent<E>, BuildError> {
        let worker_state = self.worker_state_path();
        let worker_id = self.stored().as_ref().map(|s| s.worker_id.clone());
        let AgentBuilder {
            url,
            token,
            data_dir,
            name,
            mode,
            policy,
            mut session,
            ca_file,
            connect_timeout,
            agent_version,
            container_engines,
            on_event,
            gateway,
            gateway_interval,
            gateway_timeout,
            health_addr,
            health_allow_remote,
            engine_check,
            status_socket,
            sd_notify,
            ..
        } = self;
        state::create_private_dir(&data_dir).map_err(|error| BuildError::DataDir { path: data_dir.clone(), error })?;
        let mut connector = WsConnector::new(&url, token)?.with_connect_timeout(connect_timeout);
        if let Some(ca_file) = &ca_file {
            connector = connector.with_ca_file(ca_file)?;
        }
        // The same trust roots as the orchestrator connection.
        let tls = crate::tls::client_config(ca_file.as_deref())?;
        let (monitor, gateway) = GatewayMonitor::new(gateway, gateway_interval, gateway_timeout, tls, &agent_version);
        let probe = SysProbe::new(&data_dir).map_err(BuildError::Probe)?.with_gateway(gateway.clone());
        let seed = run_seed();
        if session.backoff.seed == 0 {
            // Differs between workers and restarts, so a fleet does not retry in step.
            session.backoff.seed = seed;
        }
        if session.streams.id_seed == 0 {
            // Terminal session ids must not repeat across worker runs: a stale re-attach
            // would otherwise name a new session.
            session.streams.id_seed = mix(seed);
        }
        let health = Health::new(SmolClock::new(), health::stale_after(&session, connect_timeout), &agent_version);
        let info = system_info();
        let register = Register {
            protocol_version: PROTOCOL_VERSION,
            name: name.unwrap_or_else(|| info.hostname.clone()),
            hostname: info.hostname,
            platform: info.platform,
            arch: info.arch,
            cpu_count: info.cpu_count,
            memory_total: info.memory_total,
            container_engines,
            agent_version,
            mode,
            worker_id,
            // The worker announces the bounds it applies.
            limits: session.limits,
        };
        tracing::debug!(floor = policy.floor().as_str(), "the engine runs behind the security floor");
        let health_listener = match health_addr {
            Some(addr) => Some(bind_health(addr, health_allow_remote)?),
            None => None,
        };
        #[cfg(unix)]
        let status_socket = status_socket
            .then(|| match health::status_socket::StatusSocket::bind(&data_dir) {
                Ok(socket) => Some(socket),
                Err(error) => {
                    tracing::warn!(%error, dir = %data_dir.display(), "not serving worker.sock for `cropscode status`");
                    None
                }
            })
            .flatten();
        #[cfg(not(unix))]
        let _ = status_socket;
        Ok(Agent {
            connector,
            engine: PolicedEngine::new(engine, policy),
            probe,
            session,
            register,
            audit: AuditLog::open(&data_dir),
            worker_state,
            on_event: on_event.unwrap_or_else(|| Box::new(|_| {})),
            monitor,
            gateway,
            health,
            health_listener,
            engine_check,
            #[cfg(unix)]
            status_socket,
            sd_notify,
        })
    }
}

fn bind_health(addr: SocketAddr, allow_remote: bool) -> Result<async_net::TcpListener, BuildError> {
    let refuse = |message: String| BuildError::Health { addr, message };
    if !health::http::is_allowed(addr, allow_remote) {
        return Err(refuse("not a loopback address; set HEALTH_ALLOW_REMOTE=1 to serve others".into()));
    }
    let listener = std::net::TcpListener::bind(addr).map_err(|e| refuse(format!("cannot listen: {e}")))?;
    async_net::TcpListener::try_from(listener).map_err(|e| refuse(format!("cannot listen: {e}")))
}

/// `worker.json`, or nothing (a damaged file is logged: the worker registers afresh).
fn stored_state(path: &Path) -> Option<WorkerState> {
    state::read_worker_state(path).unwrap_or_else(|error| {
        tracing::warn!(%error, "ignoring an unreadable worker.json; the worker registers afresh");
        None
    })
}

/// A running worker: see the [module docs](self). Made by [`Agent::builder`].
pub struct Agent<E> {
    connector: WsConnector,
    engine: PolicedEngine<E>,
    probe: SysProbe,
    session: SessionConfig,
    register: Register,
    audit: AuditLog,
    worker_state: PathBuf,
    on_event: OnEvent,
    monitor: GatewayMonitor,
    gateway: GatewayHandle,
    health: Arc<Health>,
    health_listener: Option<async_net::TcpListener>,
    engine_check: Option<EngineCheck>,
    #[cfg(unix)]
    status_socket: Option<health::status_socket::StatusSocket>,
    sd_notify: bool,
}

impl<E> fmt::Debug for Agent<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("url", self.connector.url())
            .field("register", &self.register)
            .field("floor", &self.engine.policy().floor())
            .finish_non_exhaustive()
    }
}

impl Agent<()> {
    /// Starts the configuration of an agent; see [`AgentBuilder::new`].
    pub fn builder(url: impl Into<String>, token: Secret, data_dir: impl Into<PathBuf>) -> AgentBuilder {
        AgentBuilder::new(url, token, data_dir)
    }
}

impl<E: Engine> Agent<E> {
    /// The registration sent on every connection (`workerId` as stored at build).
    pub fn register(&self) -> &Register {
        &self.register
    }

    /// The policy the engine runs behind.
    pub fn policy(&self) -> &Policy {
        self.engine.policy()
    }

    /// The caller's engine (behind the policy).
    pub fn engine(&self) -> &E {
        self.engine.inner()
    }

    /// The gateway's target and last reading (shared with the running agent).
    pub fn gateway(&self) -> &GatewayHandle {
        &self.gateway
    }

    /// The worker's live state (pulse, link, commands, metrics).
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// Where the health listener listens, when it is on.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Where the audit log is written.
    pub fn audit_path(&self) -> PathBuf {
        self.audit.path()
    }

    /// Runs the worker on the current thread until `shutdown` resolves; then
    /// the session sends a normal close (1000) and this returns.
    pub fn run(self, shutdown: impl Future<Output = ()>) {
        smol::block_on(self.run_async(shutdown))
    }

    /// [`Agent::run`] as a future, for callers that already run an executor
    /// (it needs smol's reactor, which `smol::block_on` and smol's executors drive).
    pub async fn run_async(self, shutdown: impl Future<Output = ()>) {
        let Agent {
            connector,
            engine,
            probe,
            session,
            register,
            mut audit,
            worker_state,
            mut on_event,
            monitor,
            gateway,
            health,
            health_listener,
            engine_check,
            #[cfg(unix)]
            status_socket,
            sd_notify,
        } = self;
        let clock = health.loop_clock();
        let name = register.name.clone();
        let mut session = Session::new(session, register, clock.now());
        tracing::info!(url = %connector.url(), audit = %audit.path().display(), "worker starting; auditing every command");
        let notifier = if sd_notify { Notifier::from_env() } else { None };
        let _watchdog = notifier.as_ref().and_then(|n| n.start_watchdog(health.pulse().clone(), health.clock()));
        if let Some(notifier) = notifier.clone() {
            tell_systemd(&health, notifier);
        }
        #[allow(unused_mut)]
        let mut tasks = background(&health, health_listener, engine_check.clone());
        #[cfg(unix)]
        if let Some(socket) = status_socket {
            tasks.push(serve_status(socket, health.clone(), engine_check));
        }
        let connector = ObservedConnector::new(connector, health.clone());
        let engine = ObservedEngine::new(engine, health.clone());
        let mut probe = ObservedProbe::new(probe, health.clone());
        let mut handle = |event: &Event| {
            health.observe_event(event);
            match event {
                Event::Registered { worker_id, gateway: offered } => {
                    gateway.offer(offered.as_ref());
                    match state::write_worker_state(&worker_state, &WorkerState::now(worker_id, &name)) {
                        Ok(()) => tracing::debug!(path = %worker_state.display(), %worker_id, "stored worker.json"),
                        Err(error) => {
                            tracing::warn!(path = %worker_state.display(), %error, "cannot store worker.json")
                        }
                    }
                }
                Event::Audit(record) => audit.record(record),
                _ => {}
            }
            on_event(event);
        };
        let shutdown = async {
            shutdown.await;
            if let Some(notifier) = &notifier {
                notifier.send("STOPPING=1\nSTATUS=shutting down");
            }
        };
        let driver = cropscode_core::run(&mut session, &connector, &engine, &clock, &mut probe, &mut handle, shutdown);
        // The gateway monitor never ends: it stops with the driver.
        futures_lite::future::or(driver, monitor.run()).await;
        for task in tasks {
            task.cancel().await;
        }
    }
}

/// `READY=1` with the first outcome of connecting (registered, or retrying), and a
/// `STATUS=` line on every change of the link.
fn tell_systemd(health: &Health, notifier: Notifier) {
    let ready = AtomicBool::new(false);
    health.on_link_change(move |_, link, line| {
        let settled = matches!(link, Link::Registered | Link::Disconnected);
        if settled && !ready.swap(true, Ordering::Relaxed) {
            notifier.send(&format!("READY=1\nSTATUS={line}"));
        } else {
            notifier.send(&format!("STATUS={line}"));
        }
    });
}

/// The tasks that answer outside the loop, on smol's global executor: a stuck loop
/// does not stop them, which is how they can tell it is stuck.
fn background(
    health: &Arc<Health>,
    listener: Option<async_net::TcpListener>,
    engine_check: Option<EngineCheck>,
) -> Vec<smol::Task<()>> {
    let mut tasks = Vec::new();
    if let Some(listener) = listener {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "health listener: /healthz /readyz /metrics");
        }
        tasks.push(smol::spawn(health::http::serve(health.clone(), listener)));
        if let Some(check) = engine_check {
            let health = health.clone();
            tasks.push(smol::spawn(async move {
                loop {
                    check_engine(&health, &check).await;
                    smol::Timer::after(health::ENGINE_CHECK_INTERVAL).await;
                }
            }));
        }
    }
    tasks
}

/// Runs the engine check once, bounded, and records its outcome.
async fn check_engine(health: &Health, check: &EngineCheck) {
    use futures_lite::FutureExt;
    let outcome = check()
        .or(async {
            smol::Timer::after(health::ENGINE_CHECK_INTERVAL).await;
            Err("the engine did not answer within 5s".to_owned())
        })
        .await;
    health.engine_result(outcome);
}

/// Serves `worker.sock`, checking the engine before each answer.
#[cfg(unix)]
fn serve_status(
    socket: health::status_socket::StatusSocket,
    health: Arc<Health>,
    engine_check: Option<EngineCheck>,
) -> smol::Task<()> {
    smol::spawn(async move {
        let checked = health.clone();
        let before = move || {
            let (health, check) = (checked.clone(), engine_check.clone());
            async move {
                if let Some(check) = check {
                    check_engine(&health, &check).await;
                }
            }
        };
        socket.serve(health, before).await
    })
}

/// Why [`AgentBuilder::build`] could not assemble the agent. Once built, it
/// runs until shutdown.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The URL, the CA file or the token cannot be used.
    Connector(TransportError),
    /// The data directory cannot be created.
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The machine's figures cannot be read.
    Probe(io::Error),
    /// The health listener cannot serve this address.
    Health {
        /// The address.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Connector(error) => fmt::Display::fmt(error, f),
            BuildError::DataDir { path, error } => write!(f, "cannot create {}: {error}", path.display()),
            BuildError::Probe(error) => write!(f, "system probe: {error}"),
            BuildError::Health { addr, message } => write!(f, "health listener on {addr}: {message}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Connector(error) => Some(error),
            BuildError::DataDir { error, .. } | BuildError::Probe(error) => Some(error),
            BuildError::Health { .. } => None,
        }
    }
}

impl From<TransportError> for BuildError {
    fn from(error: TransportError) -> Self {
        BuildError::Connector(error)
    }
}

/// Differs between workers and between runs (start time and process id): the
/// one source of the per-run seeds.
pub fn run_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    (nanos as u64) ^ (u64::from(std::process::id()) << 32)
}

/// One SplitMix64 step: a second seed from the first, so the two are unrelated.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_filled_in_only_when_not_given() {
        let data_dir = std::env::temp_dir().join(format!("cropscode-agent-seeds-{}", std::process::id()));
        let engine = cropscode_core::dispatch::NoEngine;
        let built = Agent::builder("ws://127.0.0.1:9/worker", Secret::new("t"), &data_dir).build(engine).unwrap();
        assert_ne!(built.session.backoff.seed, 0);
        assert_ne!(built.session.streams.id_seed, 0);
        assert_ne!(built.session.backoff.seed, built.session.streams.id_seed);
        let mut session = SessionConfig::default();
        session.backoff.seed = 7;
        session.streams.id_seed = 9;
        let built = Agent::builder("ws://127.0.0.1:9/worker", Secret::new("t"), &data_dir)
            .session(session)
            .build(cropscode_core::dispatch::NoEngine)
            .unwrap();
        assert_eq!((built.session.backoff.seed, built.session.streams.id_seed), (7, 9));
        let _ = std::fs::remove_dir_all(&data_dir);
    }
}
