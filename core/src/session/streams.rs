//! The session's side of live streams: which commands the core answers
//! itself, which go to the engine, and the inputs and queries the driver uses
//! to move stream bytes (see [`crate::stream`] for the rules).
//!
//! | Command | Handled by |
//! |---|---|
//! | `terminal.open` (new), `display.open` | core allocates channel + id → [`Event::OpenStream`] → engine |
//! | `terminal.open` with `sessionId` | core: re-attach from `offset` |
//! | `terminal.input` | core: appended to the session's input |
//! | `terminal.resize` | core checks the session → [`Event::Execute`] → engine |
//! | `terminal.close`, `display.close` | core → [`Event::CloseStream`]; answered at the stream's end |
//!
//! Every such command still goes through the journal (one result per id) and
//! the audit log like any other.

use alloc::string::String;
use serde_json::Value;

use super::{Event, Session, State};
use crate::protocol::{Command, WireError};
use crate::stream::{Channel, StreamAction, StreamType, Streams};
use crate::time::Instant;

impl Session {
    /// The live streams (for inspection: logs, status, tests).
    pub fn streams(&self) -> &Streams {
        &self.streams
    }

    /// Output bytes the driver may read from the engine now, per channel.
    pub fn stream_reads(&self) -> impl Iterator<Item = (Channel, usize)> + '_ {
        self.streams.reads()
    }

    /// Input waiting to be written to the engine, per channel.
    pub fn stream_writes(&self) -> impl Iterator<Item = (Channel, &[u8])> + '_ {
        self.streams.writes()
    }

    /// Output was read from the engine for the stream on `channel`.
    pub(super) fn on_stream_data(&mut self, channel: Channel, data: &[u8]) {
        self.streams.on_data(channel, data);
    }

    /// `n` bytes of the input from [`stream_writes`](Session::stream_writes) were written.
    pub(super) fn on_stream_written(&mut self, channel: Channel, n: usize) {
        self.streams.on_written(channel, n);
    }

    /// The stream on `channel` takes no more input.
    pub(super) fn on_stream_input_closed(&mut self, channel: Channel) {
        self.streams.on_input_closed(channel);
    }

    /// The engine reports the end of the stream on `channel`.
    pub(super) fn on_stream_end(&mut self, now: Instant, channel: Channel, exit_code: Option<i32>) {
        self.streams.on_end(now, channel, exit_code);
        self.apply_stream_actions(now);
    }

    /// Stream output is waiting but this turn's budget is spent: take the
    /// other inputs that are ready without blocking, then feed one (at least
    /// [`Input::Timeout`](super::Input::Timeout)), which starts a new turn, and drain again.
    pub fn has_stream_backlog(&self) -> bool {
        self.state == State::Registered && self.streams.has_backlog()
    }

    /// Sends a registered command to the core's stream handling or to the engine.
    pub(super) fn route_command(&mut self, now: Instant, id: String, command: Command) {
        let outcome = match command {
            Command::TerminalOpen(request) if request.session_id.is_some() => self.streams.reattach(&request).map(Some),
            Command::TerminalOpen(request) => {
                let tenant = request.tenant.clone();
                match self.streams.open(StreamType::Terminal, &request.container_id, tenant.as_deref(), &id) {
                    Ok(stream) => {
                        let command = Command::TerminalOpen(request);
                        return self.events.push_back(Event::OpenStream { id, stream, command });
                    }
                    Err(error) => Err(error),
                }
            }
            Command::DisplayOpen(request) => {
                let tenant = request.tenant.clone();
                match self.streams.open(StreamType::Display, &request.container_id, tenant.as_deref(), &id) {
                    Ok(stream) => {
                        let command = Command::DisplayOpen(request);
                        return self.events.push_back(Event::OpenStream { id, stream, command });
                    }
                    Err(error) => Err(error),
                }
            }
            Command::TerminalInput(request) => {
                self.streams.input_text(&request.session_id, request.data.as_bytes()).map(Some)
            }
            Command::TerminalResize(request) => match self.streams.live_terminal(&request.session_id) {
                Ok(_) => {
                    return self.events.push_back(Event::Execute { id, command: Command::TerminalResize(request) });
                }
                Err(error) => Err(error),
            },
            Command::TerminalClose(request) => {
                self.streams.request_close(StreamType::Terminal, &request.session_id, &id)
            }
            Command::DisplayClose(request) => self.streams.request_close(StreamType::Display, &request.session_id, &id),
            command => return self.events.push_back(Event::Execute { id, command }),
        };
        match outcome {
            // A close that waits for the engine: answered when the stream ends.
            Ok(None) => self.apply_stream_actions(now),
            Ok(Some(result)) => self.on_command_result(now, id, Ok(result)),
            Err(error) => self.on_command_result(now, id, Err(error)),
        }
    }

    /// A command finished: the open of a stream turns into its result here.
    pub(super) fn stream_command_finished(
        &mut self,
        now: Instant,
        id: &str,
        outcome: Result<Value, WireError>,
    ) -> Result<Value, WireError> {
        let Some(channel) = self.streams.opening(id) else { return outcome };
        let attached = self.state == State::Registered;
        let outcome = self.streams.open_finished(now, channel, outcome, attached);
        self.apply_stream_actions(now);
        outcome
    }

    /// Acts on what the stream registry asked for.
    pub(super) fn apply_stream_actions(&mut self, now: Instant) {
        while let Some(action) = self.streams.poll_action() {
            match action {
                StreamAction::Close { channel } => self.events.push_back(Event::CloseStream { channel }),
                StreamAction::Answer { id, outcome } => self.on_command_result(now, id, outcome),
            }
        }
    }
}
