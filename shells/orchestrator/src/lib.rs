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

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

mod connection;
mod event;
mod http;
mod orchestrator;
mod registry;
mod tls;

pub use cropscode_core::protocol::{Heartbeat, Register, WireError};
pub use event::{Event, MAX_EVENT_PAYLOAD_BYTES, MAX_EVENTS, TimedEvent, print_summary};
pub use orchestrator::Orchestrator;
pub use registry::{CommandResult, MAX_PROGRESS_PER_COMMAND, WorkerInfo};

/// How to run an [`Orchestrator`].
#[derive(Clone)]
pub struct OrchestratorConfig {
    /// Where the WebSocket listener binds; must be a loopback address. Port 0 picks a free port.
    pub ws_addr: SocketAddr,
    /// Where the HTTP JSON endpoint binds, if at all; must be a loopback address.
    pub http_addr: Option<SocketAddr>,
    /// Serve `wss://` with this identity instead of `ws://`.
    pub tls: Option<TlsIdentity>,
    /// Bearer tokens accepted on the upgrade request. An empty list accepts nobody.
    pub tokens: Vec<String>,
}

impl OrchestratorConfig {
    /// Plain `ws://` on `127.0.0.1` with a free port, no HTTP endpoint, accepting one token.
    pub fn with_token(token: impl Into<String>) -> Self {
        OrchestratorConfig { tokens: vec![token.into()], ..OrchestratorConfig::default() }
    }
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        OrchestratorConfig {
            ws_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            http_addr: None,
            tls: None,
            tokens: Vec::new(),
        }
    }
}

impl fmt::Debug for OrchestratorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrchestratorConfig")
            .field("ws_addr", &self.ws_addr)
            .field("http_addr", &self.http_addr)
            .field("tls", &self.tls)
            .field("tokens", &format_args!("[{} × ***]", self.tokens.len()))
            .finish()
    }
}

/// A server certificate chain and its private key, both PEM.
#[derive(Clone)]
pub struct TlsIdentity {
    /// The certificate chain, leaf first (PEM, one or more `CERTIFICATE` blocks).
    pub cert_chain_pem: String,
    /// The leaf's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity").field("cert_chain_pem", &self.cert_chain_pem).field("key_pem", &"***").finish()
    }
}

/// How the server treats connections; switch at any time with [`Orchestrator::set_behavior`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Behavior {
    /// Speak the protocol.
    #[default]
    Normal,
    /// Complete each new upgrade (token permitting), then close the connection at once.
    AcceptAndDrop,
    /// Keep every socket open but stop reading and answering: no frames, no pongs, no
    /// acknowledgements. Frames sent meanwhile are silently dropped. Applies to live
    /// connections too; switching back to `Normal` resumes them.
    HalfOpen,
    /// Answer every upgrade with HTTP 401.
    RejectAll,
}

/// Why a command or a raw send failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OrchestratorError {
    /// No registered worker with this id is connected.
    UnknownWorker(String),
    /// The worker's connection closed before the frame could be written.
    Disconnected,
    /// No `result` arrived within the time limit.
    Timeout,
    /// [`Orchestrator::stop`] was called.
    Stopped,
}

impl fmt::Display for OrchestratorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrchestratorError::UnknownWorker(id) => write!(f, "no connected worker with id `{id}`"),
            OrchestratorError::Disconnected => f.write_str("the worker's connection closed"),
            OrchestratorError::Timeout => f.write_str("timed out waiting for the command's result"),
            OrchestratorError::Stopped => f.write_str("the orchestrator was stopped"),
        }
    }
}

impl std::error::Error for OrchestratorError {}

/// Refuses anything but a loopback address: this orchestrator has no business on a network.
fn require_loopback(addr: SocketAddr, what: &str) -> std::io::Result<()> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("the local orchestrator binds loopback addresses only; {what} {addr} is not one"),
        ))
    }
}

/// Locks a mutex, carrying on through poisoning: every critical section
/// leaves the state consistent, so a panicked holder cannot corrupt it.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let mut config = OrchestratorConfig::with_token("hunter2");
        config.tls = Some(TlsIdentity { cert_chain_pem: "CERT".into(), key_pem: "PRIVATE".into() });
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("PRIVATE"), "{shown}");
    }

    #[test]
    fn refuses_non_loopback() {
        assert!(require_loopback("127.0.0.1:1".parse().unwrap(), "ws_addr").is_ok());
        assert!(require_loopback("[::1]:1".parse().unwrap(), "ws_addr").is_ok());
        assert!(require_loopback("0.0.0.0:1".parse().unwrap(), "ws_addr").is_err());
        assert!(require_loopback("192.168.1.2:1".parse().unwrap(), "ws_addr").is_err());
    }
}
