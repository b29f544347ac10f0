//! Live streams — terminals and display relays — multiplexed over the one
//! WebSocket: channel ids, replay buffers, input deduplication, fairness,
//! backpressure and idle timeouts, all without I/O.
//!
//! # Data flow
//!
//! ```text
//!                 binary data frames (input, offset-deduplicated)
//!  orchestrator ───────────────► InputQueue ──writes()──► run ──► Engine::poll_stream_write
//!       ▲                                                             (exec stdin, TCP)
//!       │ poll_frame(): control first,
//!       │ then round-robin data frames,        reads() grants a window per channel
//!       │ at most turn_budget bytes a turn ◄── ReplayBuffer ◄─on_data── run ◄── Engine::poll_stream_read
//!                                             (last replay_bytes, by offset)
//! ```
//!
//! The registry never touches a stream: the [`Engine`](crate::Engine) owns
//! the engine side of each one (an exec attached with a TTY, a TCP
//! connection), keyed by the channel the registry allocated, and the
//! [`run`](crate::run) driver moves bytes between the two only as far as the
//! registry allows. That keeps every decision here deterministic and testable
//! with made-up instants and byte strings, and the core `no_std`.
//!
//! # Rules
//!
//! - **Channels and ids.** Each `terminal.open` or `display.open` gets a new
//!   channel (never reused while the worker runs) and a session id
//!   (`t-<seed>-<n>`, `d-<seed>-<n>`; the seed differs between worker runs, so
//!   an id from a previous run never names a new session).
//! - **Replay.** Output goes into the stream's [`ReplayBuffer`], which keeps
//!   the last [`StreamConfig::replay_bytes`] (1 MiB) by absolute offset. While
//!   attached, a cursor says what the current connection has been sent.
//!   Re-attaching (`terminal.open` with `sessionId` and `offset`) moves the
//!   cursor to `offset`: exactly the bytes after it follow, or `lostBytes`
//!   says how many the buffer no longer holds.
//! - **Backpressure.** While attached, the engine is read only while fewer
//!   than [`StreamConfig::unsent_window`] bytes (256 KiB) wait to be sent, so
//!   a slow orchestrator stops the reading instead of growing a queue — and no
//!   output is lost while attached. While detached, the engine is read freely
//!   and the buffer keeps the newest bytes. Memory per stream is bounded by
//!   `replay_bytes + input_bytes` (1.25 MiB by default), for at most
//!   [`StreamConfig::max_sessions`] streams (64).
//! - **Fairness.** [`Streams::poll_frame`] is asked only after every control
//!   frame (results, heartbeats, errors) was sent, serves the attached streams
//!   round-robin one frame (≤ [`StreamConfig::frame_payload`], 32 KiB) at a
//!   time, and stops after [`StreamConfig::turn_budget`] bytes (128 KiB) until
//!   the next input ([`Streams::new_turn`]). A flooding terminal thus gets its
//!   share, never the whole socket.
//! - **Lifetime.** When the connection drops, terminals stay alive, detached,
//!   for [`StreamConfig::idle_timeout`] (10 minutes), then are closed; display
//!   relays (a TCP stream cannot be resumed) are closed at once. A stream ends
//!   when the engine reports its end (the shell exited, the container
//!   stopped, or the close asked for completed); an attached stream then gets
//!   an `end` frame after its last data byte, a detached one lingers (for
//!   re-attach) until its idle timeout.

mod input;
mod replay;
#[cfg(test)]
mod tests;

pub use input::{InputQueue, InputRefusal};
pub use replay::ReplayBuffer;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use serde_json::Value;

pub use crate::protocol::binary::Channel;
use crate::protocol::binary::{HEADER_LEN, StreamFrame, StreamKind};
use crate::protocol::commands::{
    DisplayCloseResult, DisplayOpenResult, TerminalCloseResult, TerminalInputResult, TerminalOpen, TerminalOpenResult,
};
use crate::protocol::{ErrorCode, WireError};
use crate::time::Instant;

/// Bounds and timers of the live streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// Output bytes each stream keeps for re-attaching (1 MiB).
    pub replay_bytes: usize,
    /// While attached, the engine is read only while fewer output bytes than
    /// this wait to be sent (256 KiB; at most `replay_bytes`).
    pub unsent_window: usize,
    /// Input bytes each stream holds before the engine takes them (256 KiB).
    pub input_bytes: usize,
    /// Largest payload of one output frame (32 KiB; at most the binary frame limit).
    pub frame_payload: usize,
    /// Output bytes sent per turn of the driver, over all streams, after the
    /// control frames (128 KiB).
    pub turn_budget: usize,
    /// How long a detached terminal stays alive (10 minutes).
    pub idle_timeout: Duration,
    /// Streams open at once; more opens are answered `busy` (64).
    pub max_sessions: usize,
    /// Makes session ids differ between worker runs (the shell passes something
    /// random-ish, e.g. the start time).
    pub id_seed: u64,
}

impl StreamConfig {
    /// The defaults listed on each field.
    pub const DEFAULT: StreamConfig = StreamConfig {
        replay_bytes: 1024 * 1024,
        unsent_window: 256 * 1024,
        input_bytes: 256 * 1024,
        frame_payload: 32 * 1024,
        turn_budget: 128 * 1024,
        idle_timeout: Duration::from_secs(600),
        max_sessions: 64,
        id_seed: 0,
    };

    /// Brings the bounds into a consistent order (`max_frame_bytes` is the
    /// binary frame limit, header included).
    pub(crate) fn normalized(mut self, max_frame_bytes: usize) -> Self {
        self.replay_bytes = self.replay_bytes.max(1);
        self.unsent_window = self.unsent_window.clamp(1, self.replay_bytes);
        self.input_bytes = self.input_bytes.max(1);
        self.frame_payload = self.frame_payload.clamp(1, max_frame_bytes.saturating_sub(HEADER_LEN).max(1));
        self.turn_budget = self.turn_budget.max(1);
        self.idle_timeout = self.idle_timeout.max(Duration::from_millis(1));
        self
    }
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamType {
    /// An interactive shell (`terminal.open`).
    Terminal,
    /// A TCP relay to a VNC server (`display.open`).
    Display,
}

impl StreamType {
    fn prefix(self) -> &'static str {
        match self {
            StreamType::Terminal => "t",
            StreamType::Display => "d",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            StreamType::Terminal => "terminal",
            StreamType::Display => "display",
        }
    }
}

/// Names one stream for the engine: the channel its bytes travel on and the
/// session id the orchestrator uses in commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamId {
    /// Binary frame channel.
    pub channel: Channel,
    /// `sessionId` in commands.
    pub session_id: String,
    /// Terminal or display.
    pub kind: StreamType,
}

/// Why a stream ended, as reported in its `end` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The process or the connection ended by itself (the shell exited, the container stopped).
    Exited,
    /// `terminal.close` or `display.close`.
    Closed,
    /// Detached for longer than the idle timeout.
    IdleTimeout,
    /// The WebSocket dropped and the stream cannot be resumed (displays).
    Disconnected,
}

impl EndReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Exited => "exited",
            EndReason::Closed => "closed",
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::Disconnected => "disconnected",
        }
    }
}

/// Where a stream is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// The engine is opening it, for the command with this id.
    Opening {
        /// The `terminal.open` / `display.open` command id.
        command: String,
    },
    /// Bytes flow.
    Open,
    /// The engine was asked to end it.
    Closing {
        /// Why.
        reason: EndReason,
    },
    /// The engine reported its end; output may still wait to be sent.
    Ended {
        /// The process's exit code, when it had one.
        exit_code: Option<i32>,
        /// Why.
        reason: EndReason,
    },
}

/// Something the registry needs the session to do.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamAction {
    /// Ask the engine to end the stream on `channel`.
    Close {
        /// The channel.
        channel: Channel,
    },
    /// A command the registry held (a close waiting for the end) is answered.
    Answer {
        /// The command id.
        id: String,
        /// Its outcome.
        outcome: Result<Value, WireError>,
    },
}

/// A snapshot of one stream, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Channel, session id and type.
    pub id: StreamId,
    /// Where it is in its life.
    pub phase: Phase,
    /// Offset of the oldest output byte held.
    pub output_start: u64,
    /// Output produced so far.
    pub output_end: u64,
    /// While attached: the next output offset to send.
    pub cursor: Option<u64>,
    /// Input accepted so far (the next input offset expected).
    pub input_end: u64,
    /// Input bytes waiting for the engine.
    pub input_pending: usize,
}

#[derive(Debug)]
struct LiveStream {
    id: StreamId,
    container_id: String,
    tenant: Option<String>,
    phase: Phase,
    output: ReplayBuffer,
    input: InputQueue,
    /// Attached to the current connection: the next output offset to send.
    cursor: Option<u64>,
    /// Detached since (idle timer), while no connection has it attached.
    detached_since: Option<Instant>,
    /// Close commands waiting for the end.
    closers: Vec<String>,
}

impl LiveStream {
    /// The next output offset to send, when attached (bytes the buffer dropped are skipped).
    fn send_from(&self) -> Option<u64> {
        self.cursor.map(|cursor| cursor.max(self.output.start()))
    }

    fn has_data_to_send(&self) -> bool {
        self.send_from().is_some_and(|from| from < self.output.end())
    }

    fn end_is_due(&self) -> bool {
        matches!(self.phase, Phase::Ended { .. }) && self.cursor.is_some() && !self.has_data_to_send()
    }

    fn idle_deadline(&self, idle: Duration) -> Option<Instant> {
        match self.phase {
            Phase::Open | Phase::Ended { .. } => self.detached_since.map(|since| since + idle),
            Phase::Opening { .. } | Phase::Closing { .. } => None,
        }
    }
}

/// The live streams of one worker; see the [module docs](self).
#[derive(Debug)]
pub struct Streams {
    config: StreamConfig,
    live: BTreeMap<Channel, LiveStream>,
    next_channel: Channel,
    next_serial: u64,
    /// Round-robin position: serving starts at the first channel at or after it.
    rotation: Channel,
    turn_left: usize,
    actions: VecDeque<StreamAction>,
}

fn not_found(kind: StreamType, session_id: &str) -> WireError {
    WireError::new(
        ErrorCode::NotFound,
        format!("no {} session `{session_id}` on this worker (it ended, timed out or never existed)", kind.noun()),
    )
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Value, WireError> {
    serde_json::to_value(value)
        .map_err(|e| WireError::new(ErrorCode::Internal, format!("encoding a stream result: {e}")))
}

impl Streams {
    /// An empty registry. `max_frame_bytes` is the binary frame limit (header included).
    pub fn new(config: StreamConfig, max_frame_bytes: usize) -> Self {
        let config = config.normalized(max_frame_bytes);
        Streams {
            turn_left: config.turn_budget,
            config,
            live: BTreeMap::new(),
            next_channel: Channel::new(1),
            next_serial: 1,
            rotation: Channel::new(0),
            actions: VecDeque::new(),
        }
    }

    /// The configuration in effect.
    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    /// Streams in the registry (in any phase).
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// No streams.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// A snapshot of the stream on `channel`.
    pub fn info(&self, channel: Channel) -> Option<StreamInfo> {
        let s = self.live.get(&channel)?;
        Some(StreamInfo {
            id: s.id.clone(),
            phase: s.phase.clone(),
            output_start: s.output.start(),
            output_end: s.output.end(),
            cursor: s.cursor,
            input_end: s.input.end(),
            input_pending: s.input.pending_len(),
        })
    }

    /// Bytes held in buffers over all streams (output kept for replay plus input pending).
    pub fn buffered_bytes(&self) -> usize {
        self.live.values().map(|s| s.output.len() + s.input.pending_len()).sum()
    }

    /// Channels the engine still has open (opening, open or closing), for shutdown.
    pub fn engine_channels(&self) -> impl Iterator<Item = Channel> + '_ {
        self.live.iter().filter(|(_, s)| !matches!(s.phase, Phase::Ended { .. })).map(|(channel, _)| *channel)
    }

    /// The channel of the stream being opened by command `id`.
    pub fn opening(&self, id: &str) -> Option<Channel> {
        self.live
            .iter()
            .find(|(_, s)| matches!(&s.phase, Phase::Opening { command } if command == id))
            .map(|(channel, _)| *channel)
    }

    /// Allocates a channel and a session id for a new stream, opened by command `id`.
    pub fn open(
        &mut self,
        kind: StreamType,
        container_id: &str,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<StreamId, WireError> {
        if self.live.len() >= self.config.max_sessions {
            return Err(WireError::new(
                ErrorCode::Busy,
                format!("{} streams are open (limit {}); close one first", self.live.len(), self.config.max_sessions),
            ));
        }
        let mut channel = self.next_channel;
        while channel == Channel::new(0) || self.live.contains_key(&channel) {
            channel = channel.wrapping_next();
        }
        self.next_channel = channel.wrapping_next();
        let session_id = format!("{}-{:x}-{}", kind.prefix(), self.config.id_seed, self.next_serial);
        self.next_serial += 1;
        let stream = StreamId { channel, session_id, kind };
        self.live.insert(
            channel,
            LiveStream {
                id: stream.clone(),
                container_id: container_id.into(),
                tenant: tenant.map(String::from),
                phase: Phase::Opening { command: id.into() },
                output: ReplayBuffer::new(self.config.replay_bytes),
                input: InputQueue::new(self.config.input_bytes),
                cursor: None,
                detached_since: None,
                closers: Vec::new(),
            },
        );
        Ok(stream)
    }

    /// The engine finished opening the stream on `channel`: with an error the
    /// stream is forgotten; otherwise it is attached when `attached` (the
    /// connection that asked is still registered) and the open's result is built.
    pub fn open_finished(
        &mut self,
        now: Instant,
        channel: Channel,
        outcome: Result<Value, WireError>,
        attached: bool,
    ) -> Result<Value, WireError> {
        if let Err(error) = outcome {
            self.live.remove(&channel);
            return Err(error);
        }
        let Some(stream) = self.live.get_mut(&channel) else {
            return Err(WireError::new(ErrorCode::Internal, "the stream vanished while opening"));
        };
        stream.phase = Phase::Open;
        if attached {
            stream.cursor = Some(0);
        } else {
            stream.detached_since = Some(now);
            if stream.id.kind == StreamType::Display {
                stream.phase = Phase::Closing { reason: EndReason::Disconnected };
                self.actions.push_back(StreamAction::Close { channel });
            }
        }
        let id = stream.id.clone();
        match id.kind {
            StreamType::Terminal => encode(&TerminalOpenResult {
                session_id: id.session_id,
                channel,
                resumed: false,
                offset: 0,
                lost_bytes: 0,
            }),
            StreamType::Display => encode(&DisplayOpenResult { session_id: id.session_id, channel }),
        }
    }

    fn find(&self, kind: StreamType, session_id: &str) -> Result<Channel, WireError> {
        self.live
            .iter()
            .find(|(_, s)| s.id.kind == kind && s.id.session_id == session_id)
            .map(|(channel, _)| *channel)
            .ok_or_else(|| not_found(kind, session_id))
    }

    /// `terminal.open` with a `sessionId`: attaches the session to the current
    /// connection, resuming its output at `offset`.
    pub fn reattach(&mut self, request: &TerminalOpen) -> Result<Value, WireError> {
        let session_id = request.session_id.as_deref().unwrap_or_default();
        let channel = self.find(StreamType::Terminal, session_id)?;
        let Some(stream) = self.live.get_mut(&channel) else { return Err(not_found(StreamType::Terminal, session_id)) };
        // Another container or tenant: as if it did not exist.
        if stream.container_id != request.container_id || (request.tenant.is_some() && stream.tenant != request.tenant)
        {
            return Err(not_found(StreamType::Terminal, session_id));
        }
        if matches!(stream.phase, Phase::Opening { .. }) {
            return Err(WireError::new(ErrorCode::Conflict, "the session is still opening; wait for its result"));
        }
        let end = stream.output.end();
        if request.offset > end {
            return Err(WireError::new(
                ErrorCode::InvalidRequest,
                format!("`offset`: {} is beyond the {end} output bytes the session has produced", request.offset),
            ));
        }
        let lost_bytes = stream.output.lost_before(request.offset);
        let offset = request.offset + lost_bytes;
        stream.cursor = Some(offset);
        stream.detached_since = None;
        tracing::info!(session = session_id, channel = channel.get(), offset, lost_bytes, "terminal re-attached");
        encode(&TerminalOpenResult { session_id: session_id.into(), channel, resumed: true, offset, lost_bytes })
    }

    /// `terminal.input`: appends `data` to the session's input.
    pub fn input_text(&mut self, session_id: &str, data: &[u8]) -> Result<Value, WireError> {
        let channel = self.find(StreamType::Terminal, session_id)?;
        let Some(stream) = self.live.get_mut(&channel) else { return Err(not_found(StreamType::Terminal, session_id)) };
        let accepted = stream.input.append(data).map_err(|refusal| refused(channel, refusal))?;
        encode(&TerminalInputResult { session_id: session_id.into(), accepted_bytes: accepted as u32 })
    }

    /// A binary frame from the orchestrator.
    pub fn input_frame(&mut self, frame: &StreamFrame<'_>) -> Result<(), WireError> {
        // The kind first: a frame the orchestrator may never send is refused the same
        // way whatever its channel.
        if frame.kind != StreamKind::Data {
            return Err(WireError::new(
                ErrorCode::InvalidRequest,
                "only data frames are accepted from the orchestrator; end a stream with terminal.close or display.close",
            ));
        }
        let Some(stream) = self.live.get_mut(&frame.channel) else {
            return Err(WireError::new(ErrorCode::NotFound, format!("no open stream on channel {}", frame.channel)));
        };
        stream.input.accept_at(frame.offset, frame.payload).map_err(|r| refused(frame.channel, r))?;
        Ok(())
    }

    /// Checks that `session_id` is a terminal that can still be resized; returns its channel.
    pub fn live_terminal(&self, session_id: &str) -> Result<Channel, WireError> {
        let channel = self.find(StreamType::Terminal, session_id)?;
        match self.live.get(&channel).map(|s| &s.phase) {
            Some(Phase::Open) => Ok(channel),
            Some(Phase::Opening { .. }) => {
                Err(WireError::new(ErrorCode::Conflict, "the session is still opening; wait for its result"))
            }
            _ => Err(WireError::new(ErrorCode::Conflict, "the session has ended")),
        }
    }

    /// `terminal.close` / `display.close` with command id `id`: `Some(result)`
    /// when the stream had already ended, `None` when the answer waits for the end.
    pub fn request_close(&mut self, kind: StreamType, session_id: &str, id: &str) -> Result<Option<Value>, WireError> {
        let channel = self.find(kind, session_id)?;
        let Some(stream) = self.live.get_mut(&channel) else { return Err(not_found(kind, session_id)) };
        match stream.phase {
            Phase::Opening { .. } => {
                Err(WireError::new(ErrorCode::Conflict, "the session is still opening; close it once it answered"))
            }
            Phase::Ended { exit_code, .. } => {
                self.live.remove(&channel);
                close_result(kind, session_id, exit_code).map(Some)
            }
            Phase::Open => {
                stream.phase = Phase::Closing { reason: EndReason::Closed };
                stream.input.close();
                stream.closers.push(id.into());
                self.actions.push_back(StreamAction::Close { channel });
                Ok(None)
            }
            Phase::Closing { .. } => {
                stream.closers.push(id.into());
                Ok(None)
            }
        }
    }

    /// The connection dropped: every stream is detached; displays are closed.
    pub fn detach_all(&mut self, now: Instant) {
        for (channel, stream) in &mut self.live {
            stream.cursor = None;
            stream.detached_since.get_or_insert(now);
            if stream.id.kind == StreamType::Display && stream.phase == Phase::Open {
                stream.phase = Phase::Closing { reason: EndReason::Disconnected };
                stream.input.close();
                self.actions.push_back(StreamAction::Close { channel: *channel });
            }
        }
    }

    /// How many output bytes the driver may read from the engine now, per channel.
    pub fn reads(&self) -> impl Iterator<Item = (Channel, usize)> + '_ {
        let window = self.config.unsent_window;
        self.live.iter().filter_map(move |(channel, s)| {
            let max = match (&s.phase, s.send_from()) {
                (Phase::Open, Some(from)) => window.saturating_sub((s.output.end() - from) as usize),
                // Detached, or closing: read on (the buffer keeps the newest bytes) to reach the end.
                (Phase::Open | Phase::Closing { .. }, _) => usize::MAX,
                (Phase::Opening { .. } | Phase::Ended { .. }, _) => 0,
            };
            (max > 0).then_some((*channel, max))
        })
    }

    /// Input waiting to be written to the engine, per channel.
    pub fn writes(&self) -> impl Iterator<Item = (Channel, &[u8])> + '_ {
        self.live
            .iter()
            .filter(|(_, s)| s.phase == Phase::Open)
            .map(|(channel, s)| (*channel, s.input.next_run()))
            .filter(|(_, run)| !run.is_empty())
    }

    /// Output read from the engine.
    pub fn on_data(&mut self, channel: Channel, data: &[u8]) {
        let Some(stream) = self.live.get_mut(&channel) else { return };
        if matches!(stream.phase, Phase::Open | Phase::Closing { .. }) {
            let dropped = stream.output.push(data);
            if dropped > 0 && stream.cursor.is_some_and(|cursor| cursor < stream.output.start()) {
                tracing::debug!(channel = channel.get(), dropped, "attached stream lost output while closing");
            }
        }
    }

    /// `n` input bytes of [`writes`](Self::writes) were written to the engine.
    pub fn on_written(&mut self, channel: Channel, n: usize) {
        if let Some(stream) = self.live.get_mut(&channel) {
            stream.input.consume(n);
        }
    }

    /// The engine takes no more input on `channel` (its input side closed).
    pub fn on_input_closed(&mut self, channel: Channel) {
        if let Some(stream) = self.live.get_mut(&channel) {
            stream.input.close();
        }
    }

    /// The engine reports the end of the stream on `channel`.
    pub fn on_end(&mut self, now: Instant, channel: Channel, exit_code: Option<i32>) {
        let Some(stream) = self.live.get_mut(&channel) else { return };
        let reason = match stream.phase {
            Phase::Closing { reason } => reason,
            Phase::Ended { .. } => return,
            Phase::Opening { .. } | Phase::Open => EndReason::Exited,
        };
        tracing::info!(channel = channel.get(), session = %stream.id.session_id, reason = reason.as_str(), ?exit_code, "stream ended");
        stream.input.close();
        if !stream.closers.is_empty() || matches!(reason, EndReason::IdleTimeout | EndReason::Disconnected) {
            let Some(stream) = self.live.remove(&channel) else { return };
            for id in stream.closers {
                let outcome = close_result(stream.id.kind, &stream.id.session_id, exit_code);
                self.actions.push_back(StreamAction::Answer { id, outcome });
            }
            return;
        }
        stream.phase = Phase::Ended { exit_code, reason };
        if stream.cursor.is_none() {
            stream.detached_since.get_or_insert(now);
        }
    }

    /// Starts a new turn of the driver: the output budget is full again.
    pub fn new_turn(&mut self) {
        self.turn_left = self.config.turn_budget;
    }

    /// Output is waiting but this turn's budget is spent: the driver should
    /// take other inputs, then start a new turn.
    pub fn has_backlog(&self) -> bool {
        self.turn_left == 0 && self.live.values().any(|s| s.has_data_to_send() || s.end_is_due())
    }

    /// The next binary frame to send: round-robin over the attached streams,
    /// within the turn's budget. Ask only after every control frame was sent.
    pub fn poll_frame(&mut self) -> Option<Vec<u8>> {
        if self.turn_left == 0 {
            return None;
        }
        let ready = |s: &LiveStream| s.has_data_to_send() || s.end_is_due();
        let channel = self
            .live
            .range(self.rotation..)
            .chain(self.live.range(..self.rotation))
            .find(|(_, s)| ready(s))
            .map(|(channel, _)| *channel)?;
        self.rotation = channel.wrapping_next();
        let stream = self.live.get_mut(&channel)?;
        if let Some(from) = stream.send_from().filter(|from| *from < stream.output.end()) {
            let payload = stream.output.read(from, self.config.frame_payload);
            let frame = StreamFrame { kind: StreamKind::Data, channel, offset: from, payload }.encode();
            let sent = payload.len();
            stream.cursor = Some(from + sent as u64);
            self.turn_left = self.turn_left.saturating_sub(sent);
            return Some(frame);
        }
        let Phase::Ended { exit_code, reason } = stream.phase else { return None };
        let mut end = serde_json::Map::new();
        end.insert("reason".into(), Value::String(reason.as_str().into()));
        if let Some(code) = exit_code {
            end.insert("exitCode".into(), Value::from(code));
        }
        let payload = serde_json::to_vec(&Value::Object(end)).unwrap_or_default();
        let frame = StreamFrame { kind: StreamKind::End, channel, offset: stream.output.end(), payload: &payload };
        let frame = frame.encode();
        // Delivered to the transport: nothing is left to re-attach to.
        self.live.remove(&channel);
        Some(frame)
    }

    /// The next idle deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.live.values().filter_map(|s| s.idle_deadline(self.config.idle_timeout)).min()
    }

    /// Closes terminals detached for longer than the idle timeout and forgets
    /// ended ones nobody re-attached to.
    pub fn handle_timeout(&mut self, now: Instant) {
        let idle = self.config.idle_timeout;
        let expired: Vec<Channel> = self
            .live
            .iter()
            .filter(|(_, s)| s.idle_deadline(idle).is_some_and(|deadline| deadline <= now))
            .map(|(channel, _)| *channel)
            .collect();
        for channel in expired {
            let Some(stream) = self.live.get_mut(&channel) else { continue };
            if matches!(stream.phase, Phase::Ended { .. }) {
                tracing::info!(channel = channel.get(), session = %stream.id.session_id, "forgetting an ended session nobody re-attached to");
                self.live.remove(&channel);
            } else {
                tracing::info!(channel = channel.get(), session = %stream.id.session_id, ?idle, "closing a session detached for too long");
                stream.phase = Phase::Closing { reason: EndReason::IdleTimeout };
                stream.input.close();
                self.actions.push_back(StreamAction::Close { channel });
            }
        }
    }

    /// The next thing the session must do for the streams.
    pub fn poll_action(&mut self) -> Option<StreamAction> {
        self.actions.pop_front()
    }
}

fn close_result(kind: StreamType, session_id: &str, exit_code: Option<i32>) -> Result<Value, WireError> {
    match kind {
        StreamType::Terminal => encode(&TerminalCloseResult { session_id: session_id.into(), exit_code }),
        StreamType::Display => encode(&DisplayCloseResult { session_id: session_id.into() }),
    }
}

fn refused(channel: Channel, refusal: InputRefusal) -> WireError {
    match refusal {
        InputRefusal::Gap { expected } => WireError::new(
            ErrorCode::InvalidRequest,
            format!(
                "input on channel {channel} skips bytes: the next offset expected is {expected}; re-send from there"
            ),
        ),
        InputRefusal::Full { expected } => WireError::new(
            ErrorCode::Busy,
            format!("input on channel {channel} is full; re-send from offset {expected} later"),
        ),
        InputRefusal::Closed => {
            WireError::new(ErrorCode::Conflict, format!("the stream on channel {channel} takes no more input"))
        }
    }
}
