//! The console's terminal relay: terminals named by the browser, kept here
//! independent of any browser socket, bridged to the worker's terminal
//! sessions and binary frames. Plain state, no I/O, no clock reads: every
//! input comes with its `now`, every output is drained by the caller.
//!
//! ```text
//!  browser socket ──browser_text──►┐                     ┌──► pop_outbox ──► worker (terminal.open/resize/close,
//!                                  │                     │                      binary input frames)
//!  worker frames ──worker_output──►│  Relay: terminals,  │
//!               ──worker_result───►│  output buffers,    ├──► poll_socket ──► browser socket (opened, data, lost,
//!  registration ──worker_registered►  pending commands   │                      reattaching, end, error)
//!  disconnect ──connection_closed─►│                     │
//!  every few seconds ──tick───────►┘                     └──► wake-ups (a socket's channel, `outbox_ready`)
//! ```
//!
//! Output is never pushed at a socket: each terminal keeps the last
//! [`OUTPUT_BUFFER_BYTES`] it received from the worker (as the worker's frames,
//! by offset) and the offset its socket has been sent up to; `poll_socket`
//! turns the difference into `data` messages, or `lost` where the buffer no
//! longer holds the bytes (a slow or absent browser, or a `lostBytes` from a
//! worker re-attach). So a slow browser costs bounded memory and never stalls
//! the worker's connection.
//!
//! Input keeps the browser's offsets, which are the worker's input offsets too
//! (every accepted byte is forwarded, in order, from offset 0 at `open`). The
//! last [`INPUT_KEPT_BYTES`] are kept and re-sent after a worker re-attach: the
//! worker drops what it already has.
//!
//! The relay's commands carry ids of their own (`c-<epoch>-t<n>`); their
//! results are taken here, synchronously, from the worker connection's task,
//! so a session's channel is known before its first output frame is read.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use cropscode_core::protocol::binary::{Channel, StreamFrame, StreamKind};
use cropscode_core::protocol::limits::TRANSPORT_MAX_MESSAGE_BYTES;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Output kept per terminal for browsers that are behind or away (the worker keeps as much).
pub const OUTPUT_BUFFER_BYTES: usize = 1024 * 1024;
/// Input kept per terminal, to re-send after a worker re-attach (as much as the page keeps).
pub const INPUT_KEPT_BYTES: usize = 64 * 1024;
/// Terminals at once, all sockets together (the worker's own session limit).
pub const MAX_TERMINALS: usize = 64;
/// Terminals attached to one browser socket.
pub const MAX_TERMINALS_PER_SOCKET: usize = 16;
/// A terminal with no socket (or a worker that does not come back) for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Queued frames for workers (mostly input), in bytes; input beyond it is refused `busy`.
const OUTBOX_BYTES: usize = 4 * 1024 * 1024;
/// Control messages queued for one socket; beyond it the oldest are dropped.
const CONTROL_QUEUE: usize = 1024;
/// How long a relay command waits for its result.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Input payload per binary frame (the worker takes up to 64 KiB).
const INPUT_FRAME_BYTES: usize = 32 * 1024;
/// Longest terminal id accepted from a browser.
const MAX_TERM_ID: usize = 64;

/// A frame for a worker, drained by the caller with [`Relay::pop_outbox`].
pub(crate) struct ToWorker {
    pub(crate) worker_id: String,
    pub(crate) message: Message,
}

struct Socket {
    control: VecDeque<Value>,
    wake: async_channel::Sender<()>,
}

enum Phase {
    /// `terminal.open` sent, not answered yet.
    Opening,
    /// Attached to the worker's connection `connection`.
    Live { connection: u64 },
    /// The worker's connection dropped; a re-attaching `terminal.open` is sent when it registers again.
    Reattaching { since: Instant },
    /// `terminal.close` sent, not answered yet.
    Closing,
    /// Gone on the worker; `end` goes to the browser after the last byte.
    Ended { reason: String, exit_code: Option<i64> },
}

struct Terminal {
    worker_id: String,
    container_id: String,
    tenant: Option<String>,
    session_id: Option<String>,
    channel: Option<u32>,
    phase: Phase,
    /// The next output offset expected from the worker.
    received: u64,
    /// The newest output by offset; a chunk starting after the previous one's end marks bytes lost.
    chunks: VecDeque<(u64, Vec<u8>)>,
    buffered: usize,
    /// The next output offset to send to the attached socket.
    delivered: u64,
    /// Input bytes accepted from the browser (= forwarded or to forward to the worker).
    input_accepted: u64,
    /// The last input bytes, ending at `input_accepted`.
    input_kept: VecDeque<u8>,
    /// Input written towards the worker on the current attach.
    input_sent: u64,
    size: (u16, u16),
    size_dirty: bool,
    close_requested: bool,
    socket: Option<u64>,
    unattached_since: Instant,
}

impl Terminal {
    fn push_output(&mut self, offset: u64, bytes: &[u8]) {
        let end = offset + bytes.len() as u64;
        if end <= self.received && !bytes.is_empty() {
            return; // a re-sent prefix
        }
        let skip = usize::try_from(self.received.saturating_sub(offset)).unwrap_or(usize::MAX).min(bytes.len());
        let start = offset.max(self.received);
        self.chunks.push_back((start, bytes[skip..].to_vec()));
        self.buffered += bytes.len() - skip;
        self.received = end.max(self.received);
        while self.buffered > OUTPUT_BUFFER_BYTES {
            let Some((first, chunk)) = self.chunks.front_mut() else { break };
            let excess = self.buffered - OUTPUT_BUFFER_BYTES;
            if chunk.len() <= excess {
                self.buffered -= chunk.len();
                self.chunks.pop_front();
            } else {
                chunk.drain(..excess);
                *first += excess as u64;
                self.buffered -= excess;
            }
        }
    }

    fn live_connection(&self) -> Option<u64> {
        match self.phase {
            Phase::Live { connection } => Some(connection),
            _ => None,
        }
    }

    fn open_params(&self) -> Map<String, Value> {
        let mut params = Map::new();
        params.insert("containerId".into(), Value::from(self.container_id.clone()));
        if let Some(tenant) = &self.tenant {
            params.insert("tenant".into(), Value::from(tenant.clone()));
        }
        params
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PendingKind {
    Open,
    Reattach,
    Resize,
    Close,
}

struct Pending {
    term: String,
    worker_id: String,
    kind: PendingKind,
    sent_at: Instant,
}

/// A browser's message (`API.md` § 5.1).
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", rename_all_fields = "camelCase")]
enum BrowserOp {
    Open {
        term: String,
        worker: String,
        container_id: String,
        tenant: Option<String>,
        cols: Option<u16>,
        rows: Option<u16>,
        command: Option<Vec<String>>,
        env: Option<Map<String, Value>>,
    },
    Attach {
        term: String,
        offset: u64,
    },
    Input {
        term: String,
        offset: u64,
        data: String,
    },
    Resize {
        term: String,
        cols: u16,
        rows: u16,
    },
    Close {
        term: String,
    },
}

/// The relay's whole state; lives behind a mutex in the shared state.
pub(crate) struct Relay {
    terminals: HashMap<String, Terminal>,
    /// (worker id, channel) → terminal id.
    channels: HashMap<(String, u32), String>,
    /// command id → what it was for.
    pending: HashMap<String, Pending>,
    sockets: HashMap<u64, Socket>,
    outbox: VecDeque<ToWorker>,
    outbox_bytes: usize,
    /// Notified when the outbox gets a frame.
    pub(crate) outbox_ready: event_listener::Event,
    epoch: u64,
    next_command: u64,
    next_socket: u64,
}

impl Relay {
    pub(crate) fn new() -> Relay {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Relay {
            terminals: HashMap::new(),
            channels: HashMap::new(),
            pending: HashMap::new(),
            sockets: HashMap::new(),
            outbox: VecDeque::new(),
            outbox_bytes: 0,
            outbox_ready: event_listener::Event::new(),
            epoch: u64::try_from(now.as_nanos()).unwrap_or(u64::MAX).max(1),
            next_command: 0,
            next_socket: 0,
        }
    }

    /// A new browser socket; `wake` gets a message whenever `poll_socket` has something for it.
    pub(crate) fn add_socket(&mut self, wake: async_channel::Sender<()>) -> u64 {
        self.next_socket += 1;
        self.sockets.insert(self.next_socket, Socket { control: VecDeque::new(), wake });
        self.next_socket
    }

    /// The socket closed: its terminals stay, detached, until an `attach` or the idle timeout.
    pub(crate) fn remove_socket(&mut self, socket: u64, now: Instant) {
        self.sockets.remove(&socket);
        for terminal in self.terminals.values_mut().filter(|t| t.socket == Some(socket)) {
            terminal.socket = None;
            terminal.unattached_since = now;
        }
    }

    /// The next frame for a worker, if any.
    pub(crate) fn pop_outbox(&mut self) -> Option<ToWorker> {
        let next = self.outbox.pop_front()?;
        self.outbox_bytes -= next.message.len();
        Some(next)
    }

    /// One text message from a browser socket.
    pub(crate) fn browser_text(&mut self, socket: u64, text: &str, now: Instant) {
        let op = match serde_json::from_str::<BrowserOp>(text) {
            Ok(op) => op,
            Err(e) => {
                let term = serde_json::from_str::<Value>(text)
                    .ok()
                    .and_then(|v| v.get("term").and_then(Value::as_str).map(str::to_owned));
                let message = format!("not a console message: {e}");
                self.error(socket, term.as_deref(), "invalid_request", &message);
                return;
            }
        };
        match op {
            BrowserOp::Open { term, worker, container_id, tenant, cols, rows, command, env } => {
                let open = Open { worker, container_id, tenant, cols, rows, command, env };
                self.open(socket, term, open, now);
            }
            BrowserOp::Attach { term, offset } => self.attach(socket, &term, offset),
            BrowserOp::Input { term, offset, data } => self.input(socket, &term, offset, data.as_bytes()),
            BrowserOp::Resize { term, cols, rows } => self.resize(socket, &term, cols, rows, now),
            BrowserOp::Close { term } => self.close(socket, &term, now),
        }
        self.wake(socket);
    }

    fn open(&mut self, socket: u64, term: String, open: Open, now: Instant) {
        let valid_id = term.len() <= MAX_TERM_ID
            && term.starts_with("t-")
            && term.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_id {
            let message = format!("a terminal id is `t-` and up to {MAX_TERM_ID} letters, digits, `-` or `_`");
            return self.error(socket, None, "invalid_request", &message);
        }
        if self.terminals.contains_key(&term) {
            // The browser asks again (its socket dropped before `opened`): no second shell.
            return self.attach(socket, &term, 0);
        }
        if self.terminals.len() >= MAX_TERMINALS {
            let message = format!("at most {MAX_TERMINALS} terminals at once; close one first");
            return self.error(socket, Some(&term), "busy", &message);
        }
        if self.attached_to(socket) >= MAX_TERMINALS_PER_SOCKET {
            let message = format!("at most {MAX_TERMINALS_PER_SOCKET} terminals per connection; close one first");
            return self.error(socket, Some(&term), "busy", &message);
        }
        let size = (open.cols.unwrap_or(80), open.rows.unwrap_or(24));
        let terminal = Terminal {
            worker_id: open.worker,
            container_id: open.container_id,
            tenant: open.tenant,
            session_id: None,
            channel: None,
            phase: Phase::Opening,
            received: 0,
            chunks: VecDeque::new(),
            buffered: 0,
            delivered: 0,
            input_accepted: 0,
            input_kept: VecDeque::new(),
            input_sent: 0,
            size,
            size_dirty: false,
            close_requested: false,
            socket: Some(socket),
            unattached_since: now,
        };
        let mut params = terminal.open_params();
        params.insert("cols".into(), Value::from(size.0));
        params.insert("rows".into(), Value::from(size.1));
        params.insert("command".into(), json!(open.command.unwrap_or_else(|| vec!["/bin/sh".into()])));
        params.insert("env".into(), Value::Object(open.env.unwrap_or_default()));
        let worker_id = terminal.worker_id.clone();
        self.terminals.insert(term.clone(), terminal);
        self.command(&term, &worker_id, "terminal.open", params, PendingKind::Open, now);
    }

    fn attach(&mut self, socket: u64, term: &str, offset: u64) {
        let attached_here = self.attached_to(socket);
        let Some(terminal) = self.terminals.get_mut(term) else {
            return self.error(socket, Some(term), "not_found", "no such terminal (it ended or was never opened)");
        };
        if offset > terminal.received {
            let message = format!("offset {offset} is beyond the {} output bytes of this terminal", terminal.received);
            return self.error(socket, Some(term), "invalid_request", &message);
        }
        if terminal.socket != Some(socket) && attached_here >= MAX_TERMINALS_PER_SOCKET {
            let message = format!("at most {MAX_TERMINALS_PER_SOCKET} terminals per connection; close one first");
            return self.error(socket, Some(term), "busy", &message);
        }
        terminal.socket = Some(socket);
        terminal.delivered = offset;
        let message = match terminal.phase {
            Phase::Opening => None, // `opened` follows the worker's answer
            Phase::Reattaching { .. } => {
                Some(json!({ "op": "reattaching", "term": term, "reason": "worker connection lost" }))
            }
            _ => Some(opened(term, terminal, true)),
        };
        if let Some(message) = message {
            self.control(socket, message);
        }
    }

    fn input(&mut self, socket: u64, term: &str, offset: u64, data: &[u8]) {
        let outbox_room = OUTBOX_BYTES.saturating_sub(self.outbox_bytes);
        let Some(terminal) = self.terminals.get_mut(term) else {
            return self.error(socket, Some(term), "not_found", "no such terminal (it ended or was never opened)");
        };
        if matches!(terminal.phase, Phase::Closing | Phase::Ended { .. }) {
            return self.error(socket, Some(term), "conflict", "the terminal has ended");
        }
        if offset > terminal.input_accepted {
            let message = format!(
                "input at offset {offset} would leave a gap: the server has {} input bytes; re-send from there",
                terminal.input_accepted
            );
            return self.error(socket, Some(term), "invalid_request", &message);
        }
        let skip = usize::try_from(terminal.input_accepted - offset).unwrap_or(usize::MAX);
        if skip >= data.len() {
            return; // all of it was accepted before (a re-send)
        }
        let fresh = &data[skip..];
        let unsent = usize::try_from(terminal.input_accepted - terminal.input_sent).unwrap_or(usize::MAX);
        let waiting = terminal.live_connection().is_none() && unsent + fresh.len() > INPUT_KEPT_BYTES;
        if waiting || fresh.len() > outbox_room {
            let message =
                format!("too much input waiting for the worker; re-send from offset {}", terminal.input_accepted);
            return self.error(socket, Some(term), "busy", &message);
        }
        terminal.input_kept.extend(fresh);
        let excess = terminal.input_kept.len().saturating_sub(INPUT_KEPT_BYTES);
        terminal.input_kept.drain(..excess);
        terminal.input_accepted += fresh.len() as u64;
        if terminal.live_connection().is_some() {
            self.flush_input(term);
        }
    }

    fn resize(&mut self, socket: u64, term: &str, cols: u16, rows: u16, now: Instant) {
        if !(1..=1000).contains(&cols) || !(1..=1000).contains(&rows) {
            return self.error(socket, Some(term), "invalid_request", "cols and rows must be 1–1000");
        }
        let Some(terminal) = self.terminals.get_mut(term) else {
            return self.error(socket, Some(term), "not_found", "no such terminal (it ended or was never opened)");
        };
        terminal.size = (cols, rows);
        terminal.size_dirty = true;
        if terminal.live_connection().is_some() {
            self.send_size(term, now);
        }
    }

    fn close(&mut self, socket: u64, term: &str, now: Instant) {
        let Some(terminal) = self.terminals.get_mut(term) else {
            return self.error(socket, Some(term), "not_found", "no such terminal (it ended or was never opened)");
        };
        terminal.socket = Some(socket);
        match terminal.phase {
            Phase::Opening => terminal.close_requested = true,
            Phase::Live { .. } | Phase::Reattaching { .. } => self.send_close(term, now),
            Phase::Closing | Phase::Ended { .. } => {}
        }
    }

    /// A binary frame from the worker `worker_id`.
    pub(crate) fn worker_output(&mut self, worker_id: &str, bytes: &[u8]) {
        let Ok(frame) = StreamFrame::decode(bytes, TRANSPORT_MAX_MESSAGE_BYTES) else { return };
        let Some(term) = self.channels.get(&(worker_id.to_string(), frame.channel.get())).cloned() else { return };
        let Some(terminal) = self.terminals.get_mut(&term) else { return };
        match frame.kind {
            StreamKind::Data => terminal.push_output(frame.offset, frame.payload),
            StreamKind::End => {
                let end: Value = serde_json::from_slice(frame.payload).unwrap_or(Value::Null);
                let reason = end.get("reason").and_then(Value::as_str).unwrap_or("exited").to_string();
                if frame.offset > terminal.received {
                    terminal.push_output(frame.offset, &[]);
                }
                terminal.phase = Phase::Ended { reason, exit_code: end.get("exitCode").and_then(Value::as_i64) };
                self.channels.remove(&(worker_id.to_string(), frame.channel.get()));
            }
            _ => return,
        }
        if let Some(socket) = terminal.socket {
            self.wake(socket);
        }
    }

    /// A `result` frame from the worker on `connection`; `true` when it answered one of the relay's commands.
    pub(crate) fn worker_result(
        &mut self,
        connection: u64,
        id: &str,
        outcome: Result<&Value, (&str, &str)>,
        now: Instant,
    ) -> bool {
        let Some(pending) = self.pending.remove(id) else { return false };
        let term = pending.term;
        let Some(terminal) = self.terminals.get_mut(&term) else {
            // The terminal went away meanwhile (idle timeout): don't leave its session behind.
            if let (PendingKind::Open | PendingKind::Reattach, Ok(result)) = (pending.kind, outcome)
                && let Some(session) = result.get("sessionId").and_then(Value::as_str)
            {
                let params = json!({ "sessionId": session }).as_object().cloned().unwrap_or_default();
                self.command("", &pending.worker_id, "terminal.close", params, PendingKind::Close, now);
            }
            return true;
        };
        let socket = terminal.socket;
        match (pending.kind, outcome) {
            (PendingKind::Open | PendingKind::Reattach, Ok(result)) => {
                let resumed = pending.kind == PendingKind::Reattach;
                let session = result.get("sessionId").and_then(Value::as_str).map(str::to_owned);
                let channel = result.get("channel").and_then(Value::as_u64).and_then(|c| u32::try_from(c).ok());
                let (Some(session), Some(channel)) = (session, channel) else {
                    let message = "the worker's terminal.open answer has no sessionId or channel";
                    terminal.phase = Phase::Ended { reason: "lost".into(), exit_code: None };
                    if let Some(socket) = socket {
                        self.error(socket, Some(&term), "internal", message);
                    }
                    return true;
                };
                if let Some(old) = terminal.channel.replace(channel) {
                    self.channels.remove(&(terminal.worker_id.clone(), old));
                }
                self.channels.insert((terminal.worker_id.clone(), channel), term.clone());
                terminal.session_id = Some(session);
                if let Some(next) = result.get("offset").and_then(Value::as_u64)
                    && next > terminal.received
                {
                    terminal.push_output(next, &[]); // `lostBytes`: the worker no longer had them
                }
                terminal.phase = Phase::Live { connection };
                // Re-send what the worker may have missed; it drops what it already has.
                terminal.input_sent = if resumed {
                    terminal.input_accepted - terminal.input_kept.len() as u64
                } else {
                    terminal.input_sent
                };
                let message = opened(&term, terminal, resumed);
                let (dirty, close) = (terminal.size_dirty, terminal.close_requested);
                if let Some(socket) = socket {
                    self.control(socket, message);
                }
                self.flush_input(&term);
                if close {
                    self.send_close(&term, now);
                } else if dirty {
                    self.send_size(&term, now);
                }
            }
            (PendingKind::Open, Err((code, message))) => {
                self.terminals.remove(&term);
                if let Some(socket) = socket {
                    self.error(socket, Some(&term), code, message);
                }
            }
            (PendingKind::Reattach, Err((code, message))) => {
                tracing::debug!(term, code, message, "re-attaching a console terminal failed");
                terminal.phase = Phase::Ended { reason: "lost".into(), exit_code: None };
                if let Some(channel) = terminal.channel {
                    self.channels.remove(&(terminal.worker_id.clone(), channel));
                }
            }
            (PendingKind::Close, outcome) => {
                let exit_code = outcome.ok().and_then(|r| r.get("exitCode")).and_then(Value::as_i64);
                terminal.phase = Phase::Ended { reason: "closed".into(), exit_code };
                if let Some(channel) = terminal.channel {
                    self.channels.remove(&(terminal.worker_id.clone(), channel));
                }
            }
            (PendingKind::Resize, Ok(_)) => {}
            (PendingKind::Resize, Err((code, message))) => {
                if let Some(socket) = socket {
                    self.error(socket, Some(&term), code, message);
                }
            }
        }
        if let Some(socket) = socket {
            self.wake(socket);
        }
        true
    }

    /// `worker_id` (re-)registered on `connection`: re-attach every terminal it had on another connection.
    pub(crate) fn worker_registered(&mut self, worker_id: &str, connection: u64, now: Instant) {
        let stale: Vec<String> = self
            .terminals
            .iter()
            .filter(|(_, t)| t.worker_id == worker_id)
            .filter(|(_, t)| match t.phase {
                Phase::Live { connection: c } => c != connection,
                Phase::Reattaching { .. } => true,
                _ => false,
            })
            .map(|(term, _)| term.clone())
            .collect();
        for term in stale {
            // A re-attach still waiting was sent on the old connection: this one replaces it.
            self.pending.retain(|_, p| !(p.term == term && p.kind == PendingKind::Reattach));
            let Some(terminal) = self.terminals.get_mut(&term) else { continue };
            let Some(session) = terminal.session_id.clone() else { continue };
            if let Phase::Live { .. } = terminal.phase {
                terminal.phase = Phase::Reattaching { since: now };
            }
            let mut params = terminal.open_params();
            params.insert("sessionId".into(), Value::from(session));
            params.insert("offset".into(), Value::from(terminal.received));
            let worker_id = terminal.worker_id.clone();
            self.command(&term, &worker_id, "terminal.open", params, PendingKind::Reattach, now);
        }
    }

    /// The worker connection `connection` ended: its terminals wait for the worker to come back.
    pub(crate) fn connection_closed(&mut self, connection: u64, now: Instant) {
        let mut sockets = Vec::new();
        for (term, terminal) in self.terminals.iter_mut().filter(|(_, t)| t.live_connection() == Some(connection)) {
            terminal.phase = Phase::Reattaching { since: now };
            if let Some(socket) = terminal.socket {
                sockets
                    .push((socket, json!({ "op": "reattaching", "term": term, "reason": "worker connection lost" })));
            }
        }
        for (socket, message) in sockets {
            self.control(socket, message);
            self.wake(socket);
        }
    }

    /// Timeouts: commands without an answer, terminals left alone, workers that do not come back.
    pub(crate) fn tick(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.sent_at) >= COMMAND_TIMEOUT)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let Some(kind) = self.pending.get(&id).map(|p| p.kind) else { continue };
            match kind {
                PendingKind::Open => {
                    self.worker_result(0, &id, Err(("timeout", "the worker did not answer terminal.open")), now);
                }
                PendingKind::Close => {
                    let Some(pending) = self.pending.remove(&id) else { continue };
                    if let Some(t) = self.terminals.get_mut(&pending.term) {
                        t.phase = Phase::Ended { reason: "closed".into(), exit_code: None };
                    }
                }
                // A re-attach is sent again when the worker registers again; a resize is dropped.
                PendingKind::Reattach | PendingKind::Resize => {
                    self.pending.remove(&id);
                }
            }
        }
        let mut close = Vec::new();
        let mut lost = Vec::new();
        for (term, terminal) in &self.terminals {
            let alone = terminal.socket.is_none() && now.duration_since(terminal.unattached_since) >= IDLE_TIMEOUT;
            match terminal.phase {
                Phase::Reattaching { since } if now.duration_since(since) >= IDLE_TIMEOUT => lost.push(term.clone()),
                _ if alone => close.push(term.clone()),
                _ => {}
            }
        }
        for term in lost {
            if let Some(terminal) = self.terminals.get_mut(&term) {
                terminal.phase = Phase::Ended { reason: "lost".into(), exit_code: None };
                if let Some(socket) = terminal.socket {
                    self.wake(socket);
                }
            }
        }
        for term in close {
            if let Some(terminal) = self.terminals.remove(&term)
                && !matches!(terminal.phase, Phase::Ended { .. })
                && terminal.live_connection().is_some()
                && let Some(session) = terminal.session_id
            {
                let params = json!({ "sessionId": session }).as_object().cloned().unwrap_or_default();
                self.command("", &terminal.worker_id, "terminal.close", params, PendingKind::Close, now);
            }
            self.channels.retain(|_, t| t != &term);
            self.pending.retain(|_, p| p.term != term);
        }
    }

    /// What to send to `socket` now: control messages first, then each attached terminal's
    /// output from where the socket is (`lost` where the buffer no longer has it), then its
    /// `end`. At most about `budget` output bytes; call again until it returns nothing.
    pub(crate) fn poll_socket(&mut self, socket: u64, budget: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(s) = self.sockets.get_mut(&socket) {
            out.extend(s.control.drain(..).map(|m| m.to_string()));
        }
        let mut budget = budget;
        let mut finished = Vec::new();
        for (term, terminal) in self.terminals.iter_mut().filter(|(_, t)| t.socket == Some(socket)) {
            if budget == 0 {
                break;
            }
            let mut complete = true;
            for (offset, bytes) in &terminal.chunks {
                let end = offset + bytes.len() as u64;
                if end < terminal.delivered || (end == terminal.delivered && !bytes.is_empty()) {
                    continue;
                }
                if budget == 0 {
                    complete = false;
                    break;
                }
                if *offset > terminal.delivered {
                    out.push(lost(term, terminal.delivered, offset - terminal.delivered));
                    terminal.delivered = *offset;
                }
                let from = usize::try_from(terminal.delivered - offset).unwrap_or(usize::MAX);
                if from < bytes.len() {
                    let data = base64(&bytes[from..]);
                    out.push(
                        json!({ "op": "data", "term": term, "offset": terminal.delivered, "data": data }).to_string(),
                    );
                    budget = budget.saturating_sub(bytes.len() - from);
                }
                terminal.delivered = end;
            }
            if complete && terminal.delivered < terminal.received {
                out.push(lost(term, terminal.delivered, terminal.received - terminal.delivered));
                terminal.delivered = terminal.received;
            }
            if complete && let Phase::Ended { reason, exit_code } = &terminal.phase {
                out.push(json!({ "op": "end", "term": term, "reason": reason, "exitCode": exit_code }).to_string());
                finished.push(term.clone());
            }
        }
        for term in finished {
            self.terminals.remove(&term);
            self.pending.retain(|_, p| p.term != term);
        }
        out
    }

    fn attached_to(&self, socket: u64) -> usize {
        self.terminals.values().filter(|t| t.socket == Some(socket)).count()
    }

    fn flush_input(&mut self, term: &str) {
        let Some(terminal) = self.terminals.get_mut(term) else { return };
        let (Some(channel), Some(_)) = (terminal.channel, terminal.live_connection()) else { return };
        let kept_from = terminal.input_accepted - terminal.input_kept.len() as u64;
        let mut offset = terminal.input_sent.max(kept_from);
        let skip = usize::try_from(offset - kept_from).unwrap_or(usize::MAX);
        let bytes: Vec<u8> = terminal.input_kept.iter().skip(skip).copied().collect();
        let worker_id = terminal.worker_id.clone();
        terminal.input_sent = terminal.input_accepted;
        for payload in bytes.chunks(INPUT_FRAME_BYTES) {
            let frame =
                StreamFrame { kind: StreamKind::Data, channel: Channel::new(channel), offset, payload }.encode();
            offset += payload.len() as u64;
            self.push_outbox(worker_id.clone(), Message::binary(frame));
        }
    }

    fn send_size(&mut self, term: &str, now: Instant) {
        let Some(terminal) = self.terminals.get_mut(term) else { return };
        let Some(session) = terminal.session_id.clone() else { return };
        terminal.size_dirty = false;
        let (cols, rows) = terminal.size;
        let params =
            json!({ "sessionId": session, "cols": cols, "rows": rows }).as_object().cloned().unwrap_or_default();
        let worker_id = terminal.worker_id.clone();
        self.command(term, &worker_id, "terminal.resize", params, PendingKind::Resize, now);
    }

    fn send_close(&mut self, term: &str, now: Instant) {
        let Some(terminal) = self.terminals.get_mut(term) else { return };
        let Some(session) = terminal.session_id.clone() else { return };
        terminal.phase = Phase::Closing;
        let params = json!({ "sessionId": session }).as_object().cloned().unwrap_or_default();
        let worker_id = terminal.worker_id.clone();
        self.command(term, &worker_id, "terminal.close", params, PendingKind::Close, now);
    }

    fn command(
        &mut self,
        term: &str,
        worker_id: &str,
        kind: &str,
        params: Map<String, Value>,
        pending: PendingKind,
        now: Instant,
    ) {
        self.next_command += 1;
        let id = format!("c-{:x}-t{}", self.epoch, self.next_command);
        let text = json!({ "type": kind, "id": id, "params": params }).to_string();
        let worker = worker_id.to_string();
        self.pending.insert(id, Pending { term: term.to_string(), worker_id: worker, kind: pending, sent_at: now });
        self.push_outbox(worker_id.to_string(), Message::text(text));
    }

    fn push_outbox(&mut self, worker_id: String, message: Message) {
        self.outbox_bytes += message.len();
        self.outbox.push_back(ToWorker { worker_id, message });
        self.outbox_ready.notify(usize::MAX);
    }

    fn control(&mut self, socket: u64, message: Value) {
        if let Some(s) = self.sockets.get_mut(&socket) {
            if s.control.len() >= CONTROL_QUEUE {
                s.control.pop_front();
            }
            s.control.push_back(message);
        }
    }

    fn error(&mut self, socket: u64, term: Option<&str>, code: &str, message: &str) {
        let mut error = json!({ "op": "error", "code": code, "message": message });
        if let (Some(term), Value::Object(fields)) = (term, &mut error) {
            fields.insert("term".into(), Value::from(term));
        }
        self.control(socket, error);
    }

    fn wake(&self, socket: u64) {
        if let Some(s) = self.sockets.get(&socket) {
            let _ = s.wake.try_send(());
        }
    }
}

struct Open {
    worker: String,
    container_id: String,
    tenant: Option<String>,
    cols: Option<u16>,
    rows: Option<u16>,
    command: Option<Vec<String>>,
    env: Option<Map<String, Value>>,
}

fn opened(term: &str, terminal: &Terminal, resumed: bool) -> Value {
    json!({
        "op": "opened",
        "term": term,
        "sessionId": terminal.session_id,
        "channel": terminal.channel,
        "resumed": resumed,
        "offset": terminal.delivered,
        "inputOffset": terminal.input_accepted,
    })
}

fn lost(term: &str, offset: u64, count: u64) -> String {
    json!({ "op": "lost", "term": term, "offset": offset, "lostBytes": count }).to_string()
}

/// Standard base64 with padding.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
