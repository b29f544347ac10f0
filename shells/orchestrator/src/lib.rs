//! A local, in-memory orchestrator for development and tests of the cropscode worker.
//!
//! It speaks the orchestrator side of `docs/protocol.md` over real sockets,
//! on loopback only: it accepts workers that present an accepted bearer token,
//! acknowledges their registration, keeps their heartbeats, sends commands and
//! routes each `result` (and the `progress` before it) back to whoever sent
//! the command. Everything it sees is recorded as an [`Event`], so tests can
//! assert on it and `cropscode dev` can print it.
//!
//! ```text
//!  worker ──TCP/TLS──► listener ──upgrade (Bearer check)──► connection task ──► Event log ──► events(), wait_for(),
//!                                                              ▲      │                     subscribe(), GET /events
//!        command(), send_text(), POST /workers/{id}/commands ──┘      └── result/progress ──► waiting command
//! ```
//!
//! Test hooks: [`Behavior`] makes the server misbehave on purpose (accept and
//! drop, go half-open, refuse everyone) and [`Orchestrator::stop`] simulates
//! the orchestrator dying, freeing the port for a restart on the same address.
//!
//! A command's answer is a [`CommandAnswer`]: core's wire
//! `cropscode_core::protocol::CommandResult` (the `result` frame, one type for
//! worker and orchestrator) plus the `progress` payloads that preceded it.
//!
//! Modules, in layers: each imports only modules of lower layers, so no
//! module imports one that imports it back (this file only declares them and
//! re-exports their public items; no module imports from it):
//!
//! ```text
//! 4  orchestrator   the Orchestrator handle: start, command, send, stop
//! 3  http           the HTTP endpoint: its checks, the page, the JSON API, the console upgrade
//! 2  connection     one task per worker socket: TLS, upgrade with the Bearer check, frames
//!    console        one task per console WebSocket; the task carrying the relay's frames
//!    assets         the console page, embedded (cargo feature `console`)
//!    tls            the wss:// acceptor from a TlsIdentity
//! 1  shared         the state every task holds (Arc<Shared>); lock, with_timeout
//! 0  registry       connections, worker ids, waiting commands, CommandAnswer, WorkerInfo
//!    relay          the console's terminals: state, buffers, offsets (no I/O)
//!    event          the bounded event log, its live feed, print_summary
//!    config         OrchestratorConfig, TlsIdentity, Behavior, the per-run secret
//!    error          OrchestratorError
//! ```
//!
//! Memory is bounded: the event log keeps the last [`MAX_EVENTS`] events and at
//! most [`MAX_EVENT_PAYLOAD_BYTES`] of frame payloads (oldest dropped first),
//! incoming messages are capped at 16 MiB, and the optional HTTP endpoint
//! ([`OrchestratorConfig::http_addr`], see `README.md`) bounds requests and
//! concurrent connections.
//!
//! ```no_run
//! # use cropscode_orchestrator::{Orchestrator, OrchestratorConfig, Event};
//! # use std::time::Duration;
//! # smol::block_on(async {
//! let orchestrator = Orchestrator::start(OrchestratorConfig::with_token("secret")).await?;
//! println!("point the worker at {}", orchestrator.ws_url());
//! let registered = orchestrator
//!     .wait_for(|e| matches!(e, Event::Registered { .. }), Duration::from_secs(30))
//!     .await;
//! if let Some(Event::Registered { worker_id, .. }) = registered.map(|t| t.event) {
//!     let listed = orchestrator
//!         .command(&worker_id, "container.list", serde_json::json!({}), Duration::from_secs(30))
//!         .await;
//!     println!("{listed:?}");
//! }
//! orchestrator.stop().await;
//! # std::io::Result::Ok(())
//! # });
//! ```

mod assets;
mod config;
mod connection;
mod console;
mod error;
mod event;
mod http;
mod orchestrator;
mod registry;
mod relay;
mod shared;
mod tls;

pub use config::{Behavior, OrchestratorConfig, TlsIdentity};
pub use console::MAX_CONSOLE_MESSAGE_BYTES;
pub use cropscode_core::protocol::{Heartbeat, Register, WireError};
pub use error::OrchestratorError;
pub use event::{Event, MAX_EVENT_PAYLOAD_BYTES, MAX_EVENTS, TimedEvent, print_summary};
pub use orchestrator::Orchestrator;
pub use registry::{CommandAnswer, MAX_PROGRESS_PER_COMMAND, WorkerInfo};
pub use relay::{IDLE_TIMEOUT, INPUT_KEPT_BYTES, MAX_TERMINALS, MAX_TERMINALS_PER_SOCKET, OUTPUT_BUFFER_BYTES};
