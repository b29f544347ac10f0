//! The worker's connection to the orchestrator as a sans-I/O state machine.
//!
//! ```text
//!            ┌──────────── backoff ────────────┐
//!            ▼                                 │
//!  Disconnected{retry_at} ──► Connecting ──► Registering ──► Registered
//!            ▲    timeout: Event::Connect │   worker.register   │ heartbeats, commands
//!            └────────────────────────────┴─────────────────────┘
//!              connect failed / lost / liveness / register timeout / rejected
//! ```
//!
//! The [`Session`] reads no clock and does no I/O: every [`Input`] is fed
//! with the caller's `now` through one entry point,
//! [`handle_input`](Session::handle_input), and every [`Output`] (frames to
//! send, events to act on, the next deadline) is queued for the caller to
//! drain with [`poll_output`](Session::poll_output); the drive order is on
//! [`Session`]. The [`run`](crate::run) future is the reference caller.
//!
//! Three rules shape the behaviour on a bad network:
//!
//! - **Liveness.** Anything received (text, binary, ping, pong) refreshes the
//!   connection. After `ping_interval` of silence a ping goes out; after
//!   `liveness_timeout` the connection is declared dead, so a half-open TCP
//!   connection cannot keep the worker silently offline.
//! - **Backoff.** Every lost or failed connection takes the next step of the
//!   [`Backoff`]; only a connection that stayed registered for `stable_after`
//!   starts the schedule over, so an orchestrator that accepts and drops at
//!   once gets exactly one attempt per step. Auth failures, `worker.rejected`,
//!   insecure URLs and TLS failures wait for the cap.
//! - **Exactly once.** Command ids go through the [`Journal`]: an id is
//!   executed once; a re-sent id gets the recorded result; results that finish
//!   while disconnected are held and sent after re-registering.

mod config;
mod drive;
mod streams;

pub use config::{AuditOutcome, AuditRecord, DisconnectReason, Event, SessionConfig, State};
pub use drive::{Input, Output};

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use serde_json::Value;

use crate::backoff::Backoff;
use crate::journal::{Journal, Lookup};
use crate::protocol::limits::TRANSPORT_MAX_MESSAGE_BYTES;
use crate::protocol::{
    Command, CommandResult, ErrorCode, ErrorFrame, Heartbeat, Incoming, Outgoing, Progress, Register, Registered,
    Rejected, StreamFrame, WireError, decode_text, encode,
};
use crate::stream::Streams;
use crate::time::Instant;
use crate::traits::{Frame, TransportError};

/// One worker's session with the orchestrator; see the [module docs](self).
///
/// # Driving a session
///
/// Like `str0m`'s `Rtc`: one input in, then every output out, before waiting
/// again. [`run`](crate::run) is this loop over real I/O.
///
/// 1. **Feed one input** with [`handle_input`](Session::handle_input) and the
///    current time: an [`Input`] says what happened (time passed, a
///    connection opened or failed, a frame arrived, a command progressed or
///    finished, a heartbeat reading, stream bytes moved). Every input starts
///    a new turn of the stream output budget.
/// 2. **Drain the outputs** with [`poll_output`](Session::poll_output) until
///    it returns [`Output::Timeout`]: first every [`Output::Transmit`]
///    (control frames, then stream data within the turn's budget), then each
///    [`Output::Event`]. Send each frame on the open transport; if a send
///    fails, feed [`Input::Disconnected`] and keep draining (the session drops
///    the dead connection's frames and keeps their results). Answering an
///    event ([`Input::Connected`] after [`Event::Connect`], [`Input::Heartbeat`]
///    after [`Event::HeartbeatDue`], …) is an input: feed it and keep draining;
///    the frames it queued come out next. A command's result
///    ([`Input::CommandResult`]) may come much later.
/// 3. **Serve the stream windows**: read engine output for each channel of
///    [`stream_reads`](Session::stream_reads), at most the bytes granted, and
///    feed [`Input::StreamData`] (or [`Input::StreamEnd`]); write the input of
///    each channel of [`stream_writes`](Session::stream_writes) and feed
///    [`Input::StreamWritten`] (or [`Input::StreamInputClosed`]). Each is an
///    input: drain again after it. The windows change with every input, so
///    ask for them again after each drain.
/// 4. **Wait** for whichever comes first: an input (a connection, a frame, a
///    command step, a stream window becoming ready) or the instant the last
///    [`Output::Timeout`] carried, then feed [`Input::Timeout`]. A deadline at
///    or before now is due at once; [`Instant::NEVER`] means only an input can
///    move the session. When [`has_stream_backlog`](Session::has_stream_backlog)
///    is true, do not block: take what is ready, then feed [`Input::Timeout`]
///    (a new turn) and drain again.
///
/// A transport is open exactly while [`State::is_connected`]; when the session
/// leaves that state (it emits [`Event::Disconnect`] when it decides so itself),
/// the caller drops the transport.
///
/// ```
/// use cropscode_core::protocol::{Heartbeat, Limits, Mode, Register, PROTOCOL_VERSION};
/// use cropscode_core::session::{Event, Input, Output, Session, SessionConfig, State};
/// use cropscode_core::{Frame, Instant};
///
/// /// Step 2: drains every output, answering heartbeats; returns the events and the deadline.
/// fn drain(session: &mut Session, now: Instant, sent: &mut Vec<Frame>) -> (Vec<Event>, Instant) {
///     let mut events = Vec::new();
///     loop {
///         match session.poll_output() {
///             Output::Transmit(frame) => sent.push(frame),
///             Output::Event(Event::HeartbeatDue) => {
///                 session.handle_input(now, Input::Heartbeat(Heartbeat::default()));
///                 events.push(Event::HeartbeatDue);
///             }
///             Output::Event(event) => events.push(event),
///             Output::Timeout(deadline) => return (events, deadline),
///         }
///     }
/// }
///
/// let register = Register {
///     protocol_version: PROTOCOL_VERSION, name: "pi".into(), hostname: "pi".into(),
///     platform: "linux".into(), arch: "aarch64".into(), cpu_count: 4, memory_total: 1 << 32,
///     container_engines: vec![], agent_version: "0.1.0".into(), mode: Mode::Byom,
///     worker_id: None, limits: Limits::DEFAULT,
/// };
/// let t0 = Instant::ZERO;
/// let mut sent = Vec::new();
/// let mut session = Session::new(SessionConfig::default(), register, t0);
/// let (events, deadline) = drain(&mut session, t0, &mut sent);
/// assert!(matches!(events[..], [Event::Connect]));
/// assert_eq!(deadline, Instant::NEVER, "connecting: only an input moves the session");
///
/// // The connection opened (step 1), then drain (step 2).
/// session.handle_input(t0, Input::Connected);
/// drain(&mut session, t0, &mut sent);
/// let Some(Frame::Text(register)) = sent.pop() else { panic!() };
/// assert!(register.contains(r#""type":"worker.register""#));
///
/// let registered = r#"{"type":"worker.registered","workerId":"w-1"}"#;
/// session.handle_input(t0, Input::Frame(Frame::Text(registered.into())));
/// let (events, deadline) = drain(&mut session, t0, &mut sent);
/// assert_eq!(session.state(), State::Registered);
/// assert!(matches!(events[..], [Event::Registered { .. }, Event::HeartbeatDue]));
/// let Some(Frame::Text(heartbeat)) = sent.pop() else { panic!() };
/// assert!(heartbeat.contains(r#""type":"worker.heartbeat""#));
///
/// // Step 3: no stream is open, so there is nothing to read or write.
/// assert_eq!(session.stream_reads().count() + session.stream_writes().count(), 0);
/// // Step 4: nothing else happens; at the deadline (the next heartbeat) time passes.
/// assert_eq!(deadline, t0 + SessionConfig::default().heartbeat_interval);
/// session.handle_input(deadline, Input::Timeout);
/// let (events, _) = drain(&mut session, deadline, &mut sent);
/// assert!(matches!(events[..], [Event::HeartbeatDue]));
/// ```
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    register: Register,
    worker_id: Option<String>,
    state: State,
    /// Timers of the open connection; `Some` exactly while `state.is_connected()`.
    link: Option<Link>,
    backoff: Backoff,
    journal: Journal,
    /// What the audit record of each executing command needs once it finishes.
    executing: BTreeMap<String, CommandMeta>,
    transmits: VecDeque<Pending>,
    events: VecDeque<Event>,
    /// Terminals and display relays.
    streams: Streams,
}

/// The audit-relevant facts of an executing command.
#[derive(Debug, Clone)]
struct CommandMeta {
    name: &'static str,
    tenant: Option<String>,
    target: Option<String>,
}

impl CommandMeta {
    fn of(command: &Command) -> Self {
        CommandMeta {
            name: command.name(),
            tenant: command.tenant().map(String::from),
            target: command.target_container().map(String::from),
        }
    }
}

/// Per-connection clocks.
#[derive(Debug, Clone)]
struct Link {
    last_received: Instant,
    last_ping: Option<Instant>,
    /// While registering: when to give up waiting for `worker.registered`.
    register_deadline: Option<Instant>,
    /// While registered: since when (for the backoff reset rule).
    registered_at: Option<Instant>,
    /// While registered: when the next heartbeat is due.
    next_heartbeat: Option<Instant>,
}

impl Link {
    fn next_ping(&self, config: &SessionConfig) -> Instant {
        let quiet_since = match self.last_ping {
            Some(ping) => ping.max(self.last_received),
            None => self.last_received,
        };
        quiet_since + config.ping_interval
    }

    fn dead_at(&self, config: &SessionConfig) -> Instant {
        self.last_received + config.liveness_timeout
    }
}

/// A queued outgoing frame. Results stay typed until sent so that, if the
/// connection dies first, they go back to the held queue instead of being lost.
#[derive(Debug, Clone)]
enum Pending {
    Frame(Frame),
    Result(CommandResult),
}

/// What ended a connection, for the backoff.
enum Loss<'a> {
    Transport(&'a TransportError),
    Session(&'a DisconnectReason),
}

impl Loss<'_> {
    fn is_auth(&self) -> bool {
        match self {
            Loss::Transport(e) => e.is_auth(),
            Loss::Session(reason) => matches!(reason, DisconnectReason::Rejected(_)),
        }
    }

    /// Retrying before the cap cannot help (auth, insecure URL, TLS).
    fn waits_for_cap(&self) -> bool {
        match self {
            Loss::Transport(e) => !e.is_retryable(),
            Loss::Session(_) => self.is_auth(),
        }
    }
}

impl Session {
    /// A session that connects at once: its first [`Output::Event`] is [`Event::Connect`].
    pub fn new(config: SessionConfig, register: Register, now: Instant) -> Session {
        let config = config.normalized();
        let streams = Streams::new(config.streams.clone(), config.limits.max_binary_frame_bytes as usize);
        let mut session = Session {
            streams,
            backoff: Backoff::new(config.backoff),
            journal: Journal::new(config.journal_capacity, config.held_results_max),
            executing: BTreeMap::new(),
            worker_id: register.worker_id.clone(),
            register,
            config,
            state: State::Disconnected { retry_at: now },
            link: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        session.on_timeout(now);
        session
    }

    /// Replaces the registration sent on the next connection (e.g. the detected
    /// engines changed). The current connection is not re-registered.
    pub fn set_register(&mut self, register: Register) {
        if register.worker_id.is_some() {
            self.worker_id.clone_from(&register.worker_id);
        }
        self.register = register;
    }

    /// The configuration in effect (after normalisation).
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The command-id journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Where the session is.
    pub fn state(&self) -> State {
        self.state
    }

    /// The orchestrator's id for this worker: from the last `worker.registered`,
    /// else the one the [`Register`] was created with.
    pub fn worker_id(&self) -> Option<&str> {
        self.worker_id.as_deref()
    }

    /// A connection is open: send `worker.register` and wait for the answer.
    fn on_connected(&mut self, now: Instant) {
        if self.state.is_connected() {
            tracing::warn!("connected while a connection was open; replacing it");
            self.forget_link(now);
        }
        let mut register = self.register.clone();
        if self.worker_id.is_some() {
            register.worker_id.clone_from(&self.worker_id);
        }
        tracing::info!(worker_id = register.worker_id.as_deref().unwrap_or("-"), "connected; registering");
        self.state = State::Registering;
        self.link = Some(Link {
            last_received: now,
            last_ping: None,
            register_deadline: Some(now + self.config.register_timeout),
            registered_at: None,
            next_heartbeat: None,
        });
        self.send(Outgoing::Register(register));
    }

    /// The connection attempt after [`Event::Connect`] failed.
    fn on_connect_failed(&mut self, now: Instant, error: &TransportError) {
        if self.state != State::Connecting {
            tracing::debug!(state = ?self.state, "ignoring a connect failure outside of Connecting");
            return;
        }
        self.back_off(now, &Loss::Transport(error));
    }

    /// The open connection broke or was closed by the orchestrator.
    fn on_disconnected(&mut self, now: Instant, error: &TransportError) {
        if !self.state.is_connected() {
            tracing::debug!(state = ?self.state, "ignoring a disconnect without an open connection");
            return;
        }
        self.lose_link(now, &Loss::Transport(error));
    }

    /// A frame arrived on the open connection.
    fn on_frame(&mut self, now: Instant, frame: Frame) {
        let Some(link) = self.link.as_mut() else {
            tracing::debug!("ignoring a frame without an open connection");
            return;
        };
        link.last_received = link.last_received.max(now);
        match frame {
            Frame::Text(text) => self.on_text(now, &text),
            Frame::Binary(bytes) => self.on_binary(now, &bytes),
            // The transport answers pings itself; both only prove the peer is alive.
            Frame::Ping(_) | Frame::Pong(_) => {}
            Frame::Close { code, reason } => self.on_disconnected(now, &TransportError::Closed { code, reason }),
        }
    }

    /// A command from [`Event::Execute`] finished.
    pub(super) fn on_command_result(&mut self, now: Instant, id: String, outcome: Result<Value, WireError>) {
        let outcome = self.stream_command_finished(now, &id, outcome);
        let outcome = outcome.and_then(fit_in_a_frame);
        let audit = match &outcome {
            Ok(_) => AuditOutcome::Ok,
            Err(error) => AuditOutcome::Error(error.clone()),
        };
        let result = CommandResult::from_outcome(id, outcome);
        if !self.journal.finish(&result) {
            tracing::warn!(id = %result.id, "dropping a result for a command that is not executing");
            return;
        }
        if let Some(meta) = self.executing.remove(&result.id) {
            self.audit(Some(result.id.clone()), Some(&meta), audit);
        }
        tracing::debug!(id = %result.id, ok = result.ok, "command finished");
        if self.state == State::Registered {
            self.transmits.push_back(Pending::Result(result));
        } else if let Some(dropped) = self.journal.hold(result) {
            log_dropped_held(&dropped);
        }
    }

    /// An interim report of a command still executing: sent as a `progress`
    /// frame while registered. Progress is best effort: it is dropped while
    /// disconnected (the result itself is held) and for ids not executing.
    fn on_command_progress(&mut self, id: String, progress: Value) {
        if self.state != State::Registered || !matches!(self.journal.lookup(&id), Lookup::InFlight) {
            tracing::trace!(id = %id, "dropping progress");
            return;
        }
        self.send(Outgoing::Progress(Progress { id, progress }));
    }

    /// The answer to [`Event::HeartbeatDue`]: sends `worker.heartbeat` if still registered.
    fn on_heartbeat(&mut self, figures: Heartbeat) {
        if self.state == State::Registered {
            self.send(Outgoing::Heartbeat(figures));
        } else {
            tracing::debug!("dropping a heartbeat: not registered");
        }
    }

    /// Time passed; act on every deadline at or before `now`.
    fn on_timeout(&mut self, now: Instant) {
        self.streams.handle_timeout(now);
        self.apply_stream_actions(now);
        match self.state {
            State::Disconnected { retry_at } if now >= retry_at => {
                tracing::info!(attempt = self.backoff.attempt() + 1, "connecting to the orchestrator");
                self.state = State::Connecting;
                self.events.push_back(Event::Connect);
            }
            State::Registering | State::Registered => self.check_link(now),
            State::Disconnected { .. } | State::Connecting => {}
        }
    }

    /// The next frame to send on the open connection: control frames
    /// (results, heartbeats, errors, pings) first, then stream data, round-robin
    /// between streams and at most a turn's budget of it per input.
    fn next_transmit(&mut self) -> Option<Frame> {
        match self.transmits.pop_front() {
            Some(Pending::Frame(frame)) => Some(frame),
            Some(Pending::Result(result)) => Some(Frame::Text(encode(&Outgoing::Result(result)))),
            None if self.state == State::Registered => self.streams.poll_frame().map(Frame::Binary),
            None => None,
        }
    }

    /// The earliest deadline; `None` while only an input can move the session
    /// (e.g. while connecting).
    fn next_deadline(&self) -> Option<Instant> {
        let streams = self.streams.poll_timeout();
        let link = self.poll_link_timeout();
        match (streams, link) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll_link_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Disconnected { retry_at } => Some(retry_at),
            State::Connecting => None,
            State::Registering | State::Registered => {
                let link = self.link.as_ref()?;
                [
                    Some(link.dead_at(&self.config)),
                    Some(link.next_ping(&self.config)),
                    link.register_deadline,
                    link.next_heartbeat,
                ]
                .into_iter()
                .flatten()
                .min()
            }
        }
    }

    fn check_link(&mut self, now: Instant) {
        let Some(link) = self.link.as_mut() else { return };
        if now >= link.dead_at(&self.config) {
            tracing::warn!(timeout = ?self.config.liveness_timeout, "nothing received from the orchestrator; reconnecting");
            return self.drop_link(now, DisconnectReason::LivenessTimeout);
        }
        if link.register_deadline.is_some_and(|deadline| now >= deadline) {
            tracing::warn!(timeout = ?self.config.register_timeout, "registration not acknowledged; reconnecting");
            return self.drop_link(now, DisconnectReason::RegisterTimeout);
        }
        if let Some(due) = link.next_heartbeat.filter(|due| now >= *due) {
            // Keep the cadence of the schedule, not of the caller's wake-ups,
            // unless the caller fell a whole interval behind.
            let mut next = due + self.config.heartbeat_interval;
            if next <= now {
                next = now + self.config.heartbeat_interval;
            }
            link.next_heartbeat = Some(next);
            self.events.push_back(Event::HeartbeatDue);
        }
        if now >= link.next_ping(&self.config) {
            link.last_ping = Some(now);
            self.transmits.push_back(Pending::Frame(Frame::Ping(Vec::new())));
        }
    }

    fn on_text(&mut self, now: Instant, text: &str) {
        match decode_text(text, &self.config.limits) {
            Ok(Incoming::Registered(registered)) => self.on_registered(now, registered),
            Ok(Incoming::Rejected(rejected)) => self.on_rejected(now, rejected),
            Ok(Incoming::Command { id, command }) => self.on_command(now, id, command),
            Err(error) => {
                // A broken frame reusing a known id is a re-send as far as the
                // contract goes: still exactly one result per id.
                if let Some(id) = error.id.as_deref().filter(|id| self.journal.knows(id)) {
                    tracing::warn!(id, code = %error.error.code, "undecodable frame reuses a known command id");
                    let id = String::from(id);
                    return self.answer_duplicate(&id, None);
                }
                tracing::warn!(id = error.id.as_deref().unwrap_or("-"), error = %error.error, "refusing a frame");
                self.send(error.reply());
                let command = error.command.map(|name| CommandMeta { name, tenant: None, target: None });
                self.audit(error.id, command.as_ref(), AuditOutcome::Error(error.error));
            }
        }
    }

    /// A binary frame: input for a live stream.
    fn on_binary(&mut self, now: Instant, bytes: &[u8]) {
        let max = self.config.limits.max_binary_frame_bytes as usize;
        let outcome = StreamFrame::decode(bytes, max).and_then(|frame| self.streams.input_frame(&frame));
        if let Err(error) = outcome {
            tracing::debug!(%error, "refusing a binary frame");
            self.send(Outgoing::Error(ErrorFrame { error }));
        }
        self.apply_stream_actions(now);
    }

    fn on_registered(&mut self, now: Instant, registered: Registered) {
        if self.state != State::Registering {
            tracing::debug!("ignoring a repeated worker.registered");
            return;
        }
        let Some(link) = self.link.as_mut() else { return };
        link.register_deadline = None;
        link.registered_at = Some(now);
        link.next_heartbeat = Some(now + self.config.heartbeat_interval);
        self.state = State::Registered;
        tracing::info!(worker_id = %registered.worker_id, "registered with the orchestrator");
        self.worker_id = Some(registered.worker_id.clone());
        self.events.push_back(Event::Registered { worker_id: registered.worker_id, gateway: registered.gateway });
        self.events.push_back(Event::HeartbeatDue);
        let held = self.journal.take_held();
        if !held.is_empty() {
            tracing::info!(count = held.len(), "sending results held while disconnected");
        }
        self.transmits.extend(held.into_iter().map(Pending::Result));
    }

    fn on_rejected(&mut self, now: Instant, rejected: Rejected) {
        tracing::error!(error = %rejected.error, "the orchestrator rejected this worker; retrying only at the backoff cap");
        self.drop_link(now, DisconnectReason::Rejected(rejected.error));
    }

    fn on_command(&mut self, now: Instant, id: String, command: Command) {
        let meta = CommandMeta::of(&command);
        if self.state != State::Registered {
            if self.journal.knows(&id) {
                tracing::debug!(id = %id, "ignoring a re-sent command before registration");
            } else {
                tracing::warn!(id = %id, "refusing a command before registration");
                let error = WireError::new(
                    ErrorCode::InvalidRequest,
                    "not registered: commands are accepted after worker.registered",
                );
                self.audit(Some(id.clone()), Some(&meta), AuditOutcome::Error(error.clone()));
                self.transmits.push_back(Pending::Result(CommandResult::from_outcome(id, Err(error))));
            }
            return;
        }
        if self.journal.knows(&id) {
            return self.answer_duplicate(&id, Some(&meta));
        }
        if self.journal.in_flight() >= self.config.max_in_flight {
            tracing::warn!(id = %id, limit = self.config.max_in_flight, "too many commands in flight; answering busy");
            let error = WireError::new(
                ErrorCode::Busy,
                alloc::format!(
                    "{} commands are already running (limit {}); retry later",
                    self.journal.in_flight(),
                    self.config.max_in_flight
                ),
            );
            self.audit(Some(id.clone()), Some(&meta), AuditOutcome::Error(error.clone()));
            self.transmits.push_back(Pending::Result(CommandResult::from_outcome(id, Err(error))));
            return;
        }
        tracing::debug!(id = %id, command = command.name(), "executing");
        self.journal.begin(id.clone());
        self.executing.insert(id.clone(), meta);
        self.route_command(now, id, command);
    }

    fn answer_duplicate(&mut self, id: &str, meta: Option<&CommandMeta>) {
        if self.state != State::Registered {
            tracing::debug!(id, "not answering a re-sent command before registration");
            return;
        }
        match self.journal.lookup(id) {
            Lookup::InFlight => {
                tracing::debug!(id, "command already executing; its result follows when done");
                self.audit(Some(id.into()), meta, AuditOutcome::AlreadyRunning);
            }
            Lookup::Recorded(result) => {
                tracing::debug!(id, "re-sent command; replaying its recorded result");
                let result = result.clone();
                self.journal.unhold(id);
                self.transmits.push_back(Pending::Result(result));
                self.audit(Some(id.into()), meta, AuditOutcome::Replayed);
            }
            Lookup::New => {}
        }
    }

    fn audit(&mut self, id: Option<String>, meta: Option<&CommandMeta>, outcome: AuditOutcome) {
        self.events.push_back(Event::Audit(AuditRecord {
            id,
            command: meta.map(|m| m.name),
            tenant: meta.and_then(|m| m.tenant.clone()),
            target: meta.and_then(|m| m.target.clone()),
            outcome,
        }));
    }

    /// The session decided to drop the connection itself.
    fn drop_link(&mut self, now: Instant, reason: DisconnectReason) {
        self.events.push_back(Event::Disconnect { reason: reason.clone() });
        self.lose_link(now, &Loss::Session(&reason));
    }

    fn lose_link(&mut self, now: Instant, loss: &Loss<'_>) {
        let registered_at = self.link.as_ref().and_then(|link| link.registered_at);
        if registered_at.is_some_and(|at| now - at >= self.config.stable_after) {
            tracing::debug!("the connection was stable; the backoff starts over");
            self.backoff.reset();
        }
        self.forget_link(now);
        self.back_off(now, loss);
    }

    /// Clears the connection's timers and queued frames, keeping unsent
    /// results; live streams are detached from it.
    fn forget_link(&mut self, now: Instant) {
        self.link = None;
        self.streams.detach_all(now);
        self.apply_stream_actions(now);
        let unsent = core::mem::take(&mut self.transmits).into_iter().filter_map(|pending| match pending {
            Pending::Result(result) => Some(result),
            Pending::Frame(_) => None,
        });
        let unsent: Vec<CommandResult> = unsent.collect();
        for dropped in self.journal.hold_front(unsent.into_iter()) {
            log_dropped_held(&dropped);
        }
    }

    fn back_off(&mut self, now: Instant, loss: &Loss<'_>) {
        let auth = loss.is_auth();
        let delay = if loss.waits_for_cap() { self.backoff.jump_to_max() } else { self.backoff.next_delay() };
        let attempt = self.backoff.attempt();
        match loss {
            Loss::Transport(error) if auth => {
                tracing::error!(%error, ?delay, attempt, "authentication failed; retrying at the backoff cap")
            }
            Loss::Transport(error) => {
                tracing::warn!(%error, ?delay, attempt, "connection lost; reconnecting after backoff")
            }
            Loss::Session(reason) => {
                tracing::warn!(%reason, ?delay, attempt, "connection dropped; reconnecting after backoff")
            }
        }
        self.state = State::Disconnected { retry_at: now + delay };
        self.events.push_back(Event::BackingOff { delay, attempt, auth });
        // Full jitter can draw a zero delay: connect at once rather than leave a
        // deadline at `now` behind.
        self.on_timeout(now);
    }

    fn send(&mut self, message: Outgoing) {
        self.transmits.push_back(Pending::Frame(Frame::Text(encode(&message))));
    }
}

/// A result whose frame would exceed the transport cap (the orchestrator would drop the
/// connection and the command would never be answered) becomes a `frame_too_large` error,
/// so every command still gets exactly one result. JSON escaping can make a result several
/// times larger than its raw bytes (a NUL byte is six), so this is checked on the encoding.
fn fit_in_a_frame(value: Value) -> Result<Value, WireError> {
    // Room for the envelope around the payload: `{"type":"result","id":…,"ok":true,"result":…}`.
    const ENVELOPE: usize = 512;
    let limit = TRANSPORT_MAX_MESSAGE_BYTES - ENVELOPE;
    let len = serde_json::to_vec(&value).map(|v| v.len()).unwrap_or(usize::MAX);
    if len <= limit {
        return Ok(value);
    }
    Err(WireError::new(
        ErrorCode::FrameTooLarge,
        alloc::format!(
            "the result encodes to {len} bytes, more than the {limit}-byte frame limit; ask for less \
             (e.g. a smaller maxOutputBytes)"
        ),
    ))
}

fn log_dropped_held(dropped: &CommandResult) {
    tracing::warn!(
        id = %dropped.id,
        "too many results held while disconnected; dropped the oldest (a re-send of its id still gets it)"
    );
}
