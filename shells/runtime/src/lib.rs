//! The smol shell of the cropscode worker: the real socket, clock, machine
//! figures and signals around the sans-I/O core, and [`Agent`], which
//! assembles them into a running worker.
//!
//! # Assembling an agent
//!
//! [`Agent::builder`] is the one way to put a worker together, in the manner
//! of quinn's `Endpoint` builder: give it the orchestrator's URL, the token
//! and the data directory, optionally the name, mode, security floor
//! ([`Policy`](cropscode_core::policy::Policy)), session timings and CA file,
//! then [`build`](AgentBuilder::build) it around any core
//! [`Engine`](cropscode_core::Engine) and [`run`](Agent::run) it until
//! shutdown. The builder does the wiring correctness depends on: the engine
//! behind the floor, `worker.register` from the machine's figures and the
//! stored `workerId`, `worker.json` rewritten atomically on every
//! registration, every command in the audit log, per-run backoff and stream
//! seeds, heartbeats with the engine's running-container count. The caller
//! still sees every session [`Event`](cropscode_core::Event) through
//! [`AgentBuilder::on_event`], for its own logs.
//!
//! ```no_run
//! # fn demo(engine: impl cropscode_core::Engine) -> Result<(), Box<dyn std::error::Error>> {
//! use cropscode_core::Secret;
//! use cropscode_runtime::{Agent, shutdown_signal};
//!
//! Agent::builder("wss://orchestrator.example.com/worker", Secret::new("tok"), "/var/lib/cropscode")
//!     .build(engine)?
//!     .run(shutdown_signal()?);
//! # Ok(()) }
//! ```
//!
//! # The modules
//!
//! Each implements one of core's boundaries, or one of the agent's files:
//!
//! - [`agent`]: [`Agent`] / [`AgentBuilder`] — the assembled worker;
//! - [`transport`]: [`WsConnector`] / [`WsTransport`] — WebSocket over TCP or
//!   TLS (rustls with `ring`), token in the `Authorization` header;
//! - [`url`]: [`validate_url`] — `wss://`, or `ws://` to loopback only;
//! - `tls`: trust roots (webpki plus an optional CA file);
//! - [`clock`]: [`SmolClock`] — monotonic milliseconds and smol timers;
//! - [`probe`]: [`SysProbe`] and [`system_info`] — heartbeat and registration figures;
//! - [`gateway`]: [`GatewayUrl`], the gateway's probe loop and [`GatewayHandle`] — `gatewayStatus`;
//! - [`signal`]: [`shutdown_signal`] — SIGINT/SIGTERM as a future;
//! - [`state`]: [`WorkerState`] — `worker.json`, written atomically;
//! - [`audit`]: [`AuditLog`] — the append-only audit log under `DATA_DIR/audit`;
//! - [`health`]: [`Health`](health::Health) — the loop pulse, live state and metrics,
//!   the optional health listener and `DATA_DIR/worker.sock`;
//! - [`notify`]: systemd's `sd_notify` protocol and watchdog.
//!
//! ```text
//!             ┌──────────── cropscode_core::run(session, …) ─────────────┐
//!  socket ◄──►│ WsTransport ◄─ WsConnector     SmolClock     SysProbe    │──► worker.json, audit log,
//!             │         PolicedEngine<Engine> (commands, run concurrently)│    on_event
//!             └──────────────────────────────────────────────────────────┘
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod agent;
pub mod audit;
pub mod clock;
pub mod gateway;
pub mod health;
pub mod notify;
pub mod probe;
pub mod signal;
pub mod state;
mod tls;
pub mod transport;
pub mod url;

pub use agent::{Agent, AgentBuilder, BuildError, run_seed};
pub use audit::AuditLog;
pub use clock::SmolClock;
pub use gateway::{GatewayHandle, GatewayReading, GatewayUrl, probe_gateway};
pub use probe::{SysProbe, SystemInfo, system_info};
pub use signal::{ShutdownSignal, shutdown_signal};
pub use state::{WorkerState, read_worker_state, write_worker_state};
pub use transport::{DEFAULT_CONNECT_TIMEOUT, USER_AGENT_VALUE, WsConnector, WsTransport};
pub use url::{WsUrl, validate_url};
