//! The boundaries between the core and the world. Shells implement these;
//! core tests implement them with in-memory fakes and hand-made time.
//!
//! Every asynchronous method returns a named associated future, so a shell can
//! hand back a concrete future type and the core forces no allocation.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::task::{Context, Poll};

use futures_lite::Stream;

use crate::policy::floor::SecurityFloor;
use crate::protocol::{Channel, Command, Heartbeat, WireError};
use crate::stream::StreamId;
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

/// What a read of a live stream's output yielded ([`Engine::poll_stream_read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRead {
    /// This many bytes were read into the buffer (at least one).
    Data(usize),
    /// The stream ended: the process exited (with this code, when it had one)
    /// or the connection closed. The engine has forgotten the channel.
    End {
        /// The process's exit code, when known.
        exit_code: Option<i32>,
    },
}

/// What a write of a live stream's input did ([`Engine::poll_stream_write`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamWrite {
    /// This many bytes were taken (at least one).
    Written(usize),
    /// The stream takes no more input; pending input is dropped.
    Closed,
}

/// Executes commands against the container engine.
///
/// An execution is a stream of [`Step`]s: zero or more `Progress`, then one
/// `Done`. An engine without progress can wrap a future with
/// [`dispatch::once`](crate::dispatch::once).
///
/// # Live streams
///
/// Terminals and display relays are byte streams owned by the engine and
/// keyed by the channel the core allocated ([`crate::stream`]). The core opens
/// one with [`open_stream`](Engine::open_stream), then the driver moves bytes
/// with the poll methods, only as far as the core's windows allow, and asks
/// for the end with [`close_stream`](Engine::close_stream); the end itself is
/// always reported by [`poll_stream_read`](Engine::poll_stream_read). The
/// default methods serve no streams, so an engine without them keeps working
/// (opening answers whatever `execute` answers for the command).
///
/// # What the driver and the floor tell the engine
///
/// Three hooks, all with do-nothing defaults, carry the facts an engine needs
/// that are not in any one command; [`run`](crate::run) and
/// [`PolicedEngine`](crate::policy::PolicedEngine) call them, so no caller has
/// to wire them by hand:
///
/// - [`set_floor`](Engine::set_floor): once, when the engine is put behind a
///   policy, with the floor in force (for the checks only the engine can make,
///   such as an image's `USER` under `restricted`);
/// - [`registered`](Engine::registered): on every `worker.registered`, before
///   any command of that registration runs, with the worker's id (e.g. for
///   ownership labels);
/// - [`containers_running`](Engine::containers_running): on every heartbeat,
///   the count it reports (`None` leaves the probe's figure).
pub trait Engine {
    /// The stream returned by [`Engine::execute`].
    type Execution<'a>: Stream<Item = Step> + 'a
    where
        Self: 'a;

    /// Starts one command. The stream ends after its `Done` step; a stream
    /// that ends without one is answered `internal`.
    fn execute(&self, command: Command) -> Self::Execution<'_>;

    /// Opens the engine side of a new live stream (`terminal.open` without a
    /// `sessionId`, or `display.open`) under `stream`. `Done(Ok(_))` means its
    /// bytes can flow; the core builds the command's result itself.
    fn open_stream(&self, stream: StreamId, command: Command) -> Self::Execution<'_> {
        let _ = stream;
        self.execute(command)
    }

    /// Reads output of the stream on `channel` into `buf` (never empty).
    /// Registers `cx`'s waker when nothing is ready. Ends with
    /// [`StreamRead::End`] exactly once per opened stream.
    fn poll_stream_read(&self, channel: Channel, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<StreamRead> {
        let _ = (channel, cx, buf);
        Poll::Ready(StreamRead::End { exit_code: None })
    }

    /// Writes input to the stream on `channel` (`data` is never empty).
    fn poll_stream_write(&self, channel: Channel, cx: &mut Context<'_>, data: &[u8]) -> Poll<StreamWrite> {
        let _ = (channel, cx, data);
        Poll::Ready(StreamWrite::Closed)
    }

    /// Starts ending the stream on `channel` (the process is ended, nothing
    /// is left running); its end follows through `poll_stream_read`.
    fn close_stream(&self, channel: Channel) {
        let _ = channel;
    }

    /// The owner's security floor in force in front of this engine, given once by
    /// [`PolicedEngine::new`](crate::policy::PolicedEngine::new). Everything the floor
    /// can judge from a command is judged before the command arrives; an engine that
    /// can check more (the image's or the container's user) does so under this floor.
    fn set_floor(&mut self, floor: SecurityFloor) {
        let _ = floor;
    }

    /// The orchestrator accepted the worker under `worker_id`. Called by
    /// [`run`](crate::run) before any command of this registration executes.
    fn registered(&self, worker_id: &str) {
        let _ = worker_id;
    }

    /// Running containers, for the heartbeat's `containersRunning`; `None` (the
    /// default) leaves the [`SystemProbe`]'s figure.
    fn containers_running(&self) -> Option<u32> {
        None
    }
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
