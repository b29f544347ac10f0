//! The session's drive contract: one [`Input`] in through
//! [`Session::handle_input`], [`Output`]s out through [`Session::poll_output`].
//!
//! ```text
//!  caller ── Input ──► handle_input ──► new turn, then the input's handler
//!                                          │ queues frames and events, moves deadlines
//!  caller ◄── Output ── poll_output ◄──────┘ Transmit… then Event… then Timeout
//! ```
//!
//! The order the caller follows (feed, drain, serve the stream windows, wait)
//! is documented on [`Session`]; this module only maps each input to its
//! handler and each output to its queue.

use alloc::string::String;
use serde_json::Value;

use super::{Event, Session};
use crate::protocol::{Channel, Heartbeat, WireError};
use crate::time::Instant;
use crate::traits::{Frame, TransportError};

/// Something that happened to a [`Session`], fed with [`Session::handle_input`].
///
/// Inputs borrow what the caller keeps anyway (the transport's error, the
/// bytes read into its buffer); frames and results are handed over.
#[derive(Debug)]
pub enum Input<'a> {
    /// Time passed: act on every deadline at or before `now` (the one the
    /// last [`Output::Timeout`] carried, or a new turn for a stream backlog).
    Timeout,
    /// The connection asked for by [`Event::Connect`] is open: the session
    /// sends `worker.register` and waits for the answer.
    Connected,
    /// The connection attempt after [`Event::Connect`] failed.
    ConnectFailed(&'a TransportError),
    /// The open connection broke, was closed by the orchestrator, or a send on
    /// it failed.
    Disconnected(&'a TransportError),
    /// A frame arrived on the open connection.
    Frame(Frame),
    /// An interim report of a command still executing: sent as a `progress`
    /// frame while registered. Best effort: dropped while disconnected (the
    /// result itself is held) and for ids not executing.
    CommandProgress {
        /// The command id from [`Event::Execute`] or [`Event::OpenStream`].
        id: String,
        /// The report.
        progress: Value,
    },
    /// A command from [`Event::Execute`] or [`Event::OpenStream`] finished.
    CommandResult {
        /// The command id.
        id: String,
        /// Its result, or the error for the orchestrator.
        outcome: Result<Value, WireError>,
    },
    /// The answer to [`Event::HeartbeatDue`]: sent as `worker.heartbeat` if
    /// still registered.
    Heartbeat(Heartbeat),
    /// Output was read from the engine for the stream on `channel` (at most
    /// what [`Session::stream_reads`] granted it).
    StreamData {
        /// The stream.
        channel: Channel,
        /// The bytes read.
        data: &'a [u8],
    },
    /// The engine's stream on `channel` ended (read side): the shell exited,
    /// the container stopped, or a close asked for by [`Event::CloseStream`] completed.
    StreamEnd {
        /// The stream.
        channel: Channel,
        /// The process's exit code, when it has one.
        exit_code: Option<i32>,
    },
    /// `written` bytes of the input from [`Session::stream_writes`] reached the engine.
    StreamWritten {
        /// The stream.
        channel: Channel,
        /// How many bytes, from the start of the granted run.
        written: usize,
    },
    /// The stream on `channel` takes no more input (its input side closed).
    StreamInputClosed {
        /// The stream.
        channel: Channel,
    },
}

/// What a [`Session`] asks of its caller, drained with [`Session::poll_output`]:
/// every `Transmit` first, then every `Event`, then one `Timeout`.
// `Event` is large (it carries a command by value) and is drained at once; see `Event`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Output {
    /// Send this frame on the open connection.
    Transmit(Frame),
    /// Act on this event; an answer to it is an [`Input`].
    Event(Event),
    /// Nothing else is queued: wait for an input, and feed [`Input::Timeout`]
    /// at this instant if none comes first. [`Instant::NEVER`] when the
    /// session has no deadline (only an input can move it, e.g. while
    /// connecting). Polling again returns the same deadline until an input
    /// changes it.
    Timeout(Instant),
}

impl Session {
    /// Feeds one input at `now`. Starts a new turn of the stream output
    /// budget, then lets the input change the session; drain
    /// [`poll_output`](Session::poll_output) after every call.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        self.streams.new_turn();
        match input {
            Input::Timeout => self.on_timeout(now),
            Input::Connected => self.on_connected(now),
            Input::ConnectFailed(error) => self.on_connect_failed(now, error),
            Input::Disconnected(error) => self.on_disconnected(now, error),
            Input::Frame(frame) => self.on_frame(now, frame),
            Input::CommandProgress { id, progress } => self.on_command_progress(id, progress),
            Input::CommandResult { id, outcome } => self.on_command_result(now, id, outcome),
            Input::Heartbeat(figures) => self.on_heartbeat(figures),
            Input::StreamData { channel, data } => self.on_stream_data(channel, data),
            Input::StreamEnd { channel, exit_code } => self.on_stream_end(now, channel, exit_code),
            Input::StreamWritten { channel, written } => self.on_stream_written(channel, written),
            Input::StreamInputClosed { channel } => self.on_stream_input_closed(channel),
        }
    }

    /// The next output: a frame to send (control frames, then stream data
    /// within the turn's budget), else an event to act on, else the next
    /// deadline. Never blocks and never reads a clock.
    pub fn poll_output(&mut self) -> Output {
        if let Some(frame) = self.next_transmit() {
            return Output::Transmit(frame);
        }
        if let Some(event) = self.events.pop_front() {
            return Output::Event(event);
        }
        Output::Timeout(self.next_deadline().unwrap_or(Instant::NEVER))
    }
}
