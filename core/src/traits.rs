//! The boundaries between the core and the world. Shells implement these;
//! core tests implement them with in-memory fakes and hand-made time.
//!
//! Every asynchronous method returns a named associated future, so a shell can
//! hand back a concrete future type and the core forces no allocation.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;

use futures_lite::Stream;

use crate::protocol::{Command, Heartbeat, WireError};
use crate::time::Instant;

/// A WebSocket message as the core sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A JSON text frame.
    Text(String),
    /// A binary stream frame (see `protocol::binary`).
    Binary(Vec<u8>),
    /// A WebSocket ping.
    Ping(Vec<u8>),
    /// A WebSocket pong.
    Pong(Vec<u8>),
    /// A close frame with its code and reason.
    Close {
        /// WebSocket close code (1000 normal, 1008 policy, 1009 too big, …).
        code: u16,
        /// Close reason text.
        reason: String,
    },
}

/// Why a connection could not be made or was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportError {
    /// The upgrade request was refused with 401 or 403: the token is wrong or revoked.
    Auth {
        /// HTTP status of the refusal.
        status: u16,
    },
    /// The URL is not acceptable (e.g. `ws://` to a host that is not loopback). Not retried hot.
    InsecureUrl(String),
    /// TLS failed (certificate, handshake).
    Tls(String),
    /// The peer could not be reached or the connection broke.
    Io(String),
    /// The peer closed the WebSocket.
    Closed {
        /// Close code sent by the peer (1005 when none).
        code: u16,
        /// Close reason sent by the peer.
        reason: String,
    },
    /// The peer broke the WebSocket protocol, or the HTTP upgrade failed with another status.
    Protocol(String),
    /// Connecting took too long.
    Timeout,
}

impl TransportError {
    /// The orchestrator refused our credentials.
    pub fn is_auth(&self) -> bool {
        matches!(self, TransportError::Auth { .. })
            || matches!(self, TransportError::Closed { code: 1008 | 4001 | 4003, .. })
    }

    /// Retrying soon may help (as opposed to waiting for the operator to fix something).
    pub fn is_retryable(&self) -> bool {
        !self.is_auth() && !matches!(self, TransportError::InsecureUrl(_) | TransportError::Tls(_))
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Auth { status } => {
                write!(
                    f,
                    "the orchestrator refused the worker token (HTTP {status}); run `cropscode login` or fix the token"
                )
            }
            TransportError::InsecureUrl(m) => write!(f, "insecure orchestrator URL: {m}"),
            TransportError::Tls(m) => write!(f, "TLS error: {m}"),
            TransportError::Io(m) => write!(f, "connection error: {m}"),
            TransportError::Closed { code, reason } => {
                write!(f, "connection closed by the orchestrator ({code} {reason})")
            }
            TransportError::Protocol(m) => write!(f, "protocol error: {m}"),
            TransportError::Timeout => f.write_str("timed out connecting to the orchestrator"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for TransportError {}

/// Opens connections to the orchestrator.
pub trait Connector {
    /// One open connection.
    type Transport: Transport;
    /// The future returned by [`Connector::connect`].
    type Connect<'a>: Future<Output = Result<Self::Transport, TransportError>> + 'a
    where
        Self: 'a;

    /// Opens a connection (TCP, TLS, WebSocket upgrade with the token). Must
    /// give up on its own within a bounded time.
    fn connect(&self) -> Self::Connect<'_>;
}

/// One open WebSocket connection.
///
/// `recv` must be cancel-safe: the driver drops a pending `recv` when a timer
/// or a command result wins the race, and calls it again later.
pub trait Transport {
    /// The future returned by [`Transport::send`].
    type Send<'a>: Future<Output = Result<(), TransportError>> + 'a
    where
        Self: 'a;
    /// The future returned by [`Transport::recv`].
    type Recv<'a>: Future<Output = Result<Frame, TransportError>> + 'a
    where
        Self: 'a;

    /// Sends one frame (flushes it).
    fn send(&mut self, frame: Frame) -> Self::Send<'_>;
    /// Receives the next frame.
    fn recv(&mut self) -> Self::Recv<'_>;
}

/// One step of a command's execution, as yielded by [`Engine::execute`].
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// An interim report (image pull, build output), sent as a `progress` frame.
    Progress(serde_json::Value),
    /// The command's outcome; the execution stream ends after it.
    Done(Result<serde_json::Value, WireError>),
}

/// Executes commands against the container engine.
///
/// An execution is a stream of [`Step`]s: zero or more `Progress`, then one
/// `Done`. An engine without progress can wrap a future with
/// [`dispatch::once`](crate::dispatch::once).
pub trait Engine {
    /// The stream returned by [`Engine::execute`].
    type Execution<'a>: Stream<Item = Step> + 'a
    where
        Self: 'a;

    /// Starts one command. The stream ends after its `Done` step; a stream
    /// that ends without one is answered `internal`.
    fn execute(&self, command: Command) -> Self::Execution<'_>;
}

/// The monotonic clock and timers.
pub trait Clock {
    /// The future returned by [`Clock::sleep_until`].
    type Sleep<'a>: Future<Output = ()> + 'a
    where
        Self: 'a;

    /// Now, on the clock's own monotonic scale.
    fn now(&self) -> Instant;
    /// Completes at (or soon after) `deadline`.
    fn sleep_until(&self, deadline: Instant) -> Self::Sleep<'_>;
}

/// The figures a heartbeat reports. Must be cheap: it runs every heartbeat.
pub trait SystemProbe {
    /// Current figures of the machine.
    fn heartbeat(&mut self) -> Heartbeat;
}
