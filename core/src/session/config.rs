//! The session's configuration and the values it hands out: [`State`], [`Event`],
//! [`DisconnectReason`], and the [`AuditRecord`] of every command frame.

use alloc::string::String;
use core::fmt;
use core::time::Duration;

use crate::backoff::BackoffConfig;
use crate::protocol::{Channel, Command, Gateway, Limits, WireError};
use crate::stream::{StreamConfig, StreamId};
use crate::time::Instant;

/// Timers and bounds of a [`Session`](super::Session).
///
/// Durations below one millisecond are raised to one millisecond (the
/// session's clock resolution), so no timer can fire in a hot loop.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// Time between two `worker.heartbeat`s while registered (10 s).
    pub heartbeat_interval: Duration,
    /// A WebSocket ping is sent after this long without receiving anything (15 s).
    /// Never more than a third of `liveness_timeout`, so a healthy but idle
    /// connection gets two chances to answer before it is declared dead.
    pub ping_interval: Duration,
    /// Nothing received for this long: the connection is dead and replaced (45 s).
    pub liveness_timeout: Duration,
    /// No `worker.registered` within this long after connecting: drop and back off (15 s).
    pub register_timeout: Duration,
    /// A connection must stay registered this long before the backoff starts over (60 s).
    pub stable_after: Duration,
    /// Reconnect delays.
    pub backoff: BackoffConfig,
    /// Bounds on incoming frames.
    pub limits: Limits,
    /// Recorded results kept for re-sent command ids (1024).
    pub journal_capacity: usize,
    /// Results held while disconnected, sent after re-registering (256).
    pub held_results_max: usize,
    /// Commands executing at once; more are answered `busy` (64).
    pub max_in_flight: usize,
    /// Bounds and timers of terminals and display relays.
    pub streams: StreamConfig,
}

impl SessionConfig {
    /// The defaults listed on each field.
    pub const DEFAULT: SessionConfig = SessionConfig {
        heartbeat_interval: Duration::from_secs(10),
        ping_interval: Duration::from_secs(15),
        liveness_timeout: Duration::from_secs(45),
        register_timeout: Duration::from_secs(15),
        stable_after: Duration::from_secs(60),
        backoff: BackoffConfig::DEFAULT,
        limits: Limits::DEFAULT,
        journal_capacity: 1024,
        held_results_max: 256,
        max_in_flight: 64,
        streams: StreamConfig::DEFAULT,
    };

    pub(super) fn normalized(mut self) -> Self {
        let floor = Duration::from_millis(1);
        for d in [
            &mut self.heartbeat_interval,
            &mut self.ping_interval,
            &mut self.liveness_timeout,
            &mut self.register_timeout,
        ] {
            *d = (*d).max(floor);
        }
        self.ping_interval = self.ping_interval.min(self.liveness_timeout / 3).max(floor);
        self
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Where the session is in its connection lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No connection; the next attempt is due at `retry_at`.
    Disconnected {
        /// When [`Event::Connect`] will be emitted (on [`Input::Timeout`](super::Input::Timeout)).
        retry_at: Instant,
    },
    /// [`Event::Connect`] was emitted; waiting for [`Input::Connected`](super::Input::Connected) or
    /// [`Input::ConnectFailed`](super::Input::ConnectFailed).
    Connecting,
    /// Connected, `worker.register` sent, waiting for `worker.registered`.
    Registering,
    /// Registered: heartbeats flow and commands are accepted.
    Registered,
}

impl State {
    /// Whether a transport is open (registering or registered).
    pub fn is_connected(self) -> bool {
        matches!(self, State::Registering | State::Registered)
    }
}

/// Why the session itself dropped a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// Nothing was received within `liveness_timeout` (e.g. a half-open TCP connection).
    LivenessTimeout,
    /// No `worker.registered` within `register_timeout`.
    RegisterTimeout,
    /// The orchestrator sent `worker.rejected`; treated like an auth failure.
    Rejected(WireError),
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::LivenessTimeout => f.write_str("nothing received from the orchestrator in time"),
            DisconnectReason::RegisterTimeout => f.write_str("the orchestrator did not acknowledge the registration"),
            DisconnectReason::Rejected(e) => write!(f, "the orchestrator rejected the registration ({e})"),
        }
    }
}

/// Something the caller must act on (drained as [`Output::Event`](super::Output::Event)).
// `Execute` carries the command by value: events are drained as soon as they
// are queued, so a few large slots cost less than an allocation per command.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// Open a connection now; answer with [`Input::Connected`](super::Input::Connected) or
    /// [`Input::ConnectFailed`](super::Input::ConnectFailed).
    Connect,
    /// Drop the current transport (the session already considers it gone).
    Disconnect {
        /// Why.
        reason: DisconnectReason,
    },
    /// Run a command on the engine; answer with [`Input::CommandResult`](super::Input::CommandResult)
    /// (and any [`Input::CommandProgress`](super::Input::CommandProgress) before it).
    Execute {
        /// The command id.
        id: String,
        /// The command.
        command: Command,
    },
    /// Open the engine side of a new live stream with
    /// [`Engine::open_stream`](crate::Engine::open_stream); answer like
    /// [`Event::Execute`], with [`Input::CommandResult`](super::Input::CommandResult) for `id`.
    OpenStream {
        /// The command id (`terminal.open` or `display.open`).
        id: String,
        /// The channel and session id the core allocated.
        stream: StreamId,
        /// The command.
        command: Command,
    },
    /// Ask the engine to end the stream on `channel`
    /// ([`Engine::close_stream`](crate::Engine::close_stream)); its end is
    /// reported with [`Input::StreamEnd`](super::Input::StreamEnd).
    CloseStream {
        /// The channel.
        channel: Channel,
    },
    /// Take a heartbeat reading; answer with [`Input::Heartbeat`](super::Input::Heartbeat).
    HeartbeatDue,
    /// The orchestrator accepted the worker (the shell persists the id in `worker.json`).
    Registered {
        /// The orchestrator's id for this worker.
        worker_id: String,
        /// The gateway `worker.registered` named, if any (the shell probes it
        /// unless the owner configured one).
        gateway: Option<Gateway>,
    },
    /// A command was answered (for the audit log): one record per command frame
    /// received, whether executed, replayed, refused or undecodable.
    Audit(AuditRecord),
    /// The session will reconnect after `delay` (for logs and status).
    BackingOff {
        /// Time until the next [`Event::Connect`].
        delay: Duration,
        /// Consecutive attempts since the backoff last started over.
        attempt: u32,
        /// Whether this follows an auth failure or rejection (retried only at the cap).
        auth: bool,
    },
}

/// What the audit log records about one command frame. Never holds a secret:
/// params are not kept, and error messages never contain secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// The command id, when the frame carried a usable one.
    pub id: Option<String>,
    /// The command name (`container.create`, …), or `None` for an undecodable frame.
    pub command: Option<&'static str>,
    /// The tenant the command named, if any.
    pub tenant: Option<String>,
    /// The container the command targets, if any.
    pub target: Option<String>,
    /// How it ended.
    pub outcome: AuditOutcome,
}

/// How an audited command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditOutcome {
    /// Executed and succeeded.
    Ok,
    /// Refused or failed with this error (a security-floor refusal carries its control and
    /// reason in [`WireError::refusal`]).
    Error(WireError),
    /// A re-sent id: the recorded result was sent again, nothing executed.
    Replayed,
    /// A re-sent id still executing: nothing executed, its one result follows.
    AlreadyRunning,
}
