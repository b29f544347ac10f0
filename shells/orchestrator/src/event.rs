//! What the orchestrator saw, in order: the bounded event log, its live feed,
//! and one-line human summaries for `cropscode dev`.
//!
//! Every connection task appends to one [`EventLog`]; readers either copy a
//! range out (`events()`, `GET /events?since=N`), wait on its change
//! notification (`wait_for`), or hold a live-feed receiver (`subscribe`).

use std::collections::VecDeque;
use std::time::Instant;

use cropscode_core::protocol::{Heartbeat, Register};

/// How many events the log keeps; older ones are dropped first.
pub const MAX_EVENTS: usize = 10_000;

/// How many bytes of frame payloads (`Frame` text, `Binary` bytes) the log keeps;
/// older events are dropped first until the total fits (the newest event always stays).
pub const MAX_EVENT_PAYLOAD_BYTES: usize = 64 * 1024 * 1024;

/// Capacity of each live-feed channel; a subscriber that falls this far behind misses events.
const SUBSCRIBER_CAPACITY: usize = 4096;

/// Something the orchestrator saw.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A WebSocket upgrade request arrived.
    Upgrade {
        /// The upgrade was accepted: an accepted bearer token was presented and the
        /// behavior is not `RejectAll`. When `false` the answer was HTTP 401.
        authorized: bool,
        /// A token appeared in the request URL (which a worker must never do).
        token_in_url: bool,
    },
    /// A worker registered (`worker.register`) and was acknowledged.
    Registered {
        /// The connection it registered on.
        connection: u64,
        /// The id the orchestrator gave it (the one it announced, if any).
        worker_id: String,
        /// The registration as sent.
        register: Register,
    },
    /// A `worker.heartbeat` arrived.
    Heartbeat {
        /// The connection it arrived on.
        connection: u64,
        /// The worker id of that connection, if it had registered.
        worker_id: Option<String>,
        /// The figures as sent.
        heartbeat: Heartbeat,
    },
    /// A text frame arrived (every one, including those also reported as
    /// `Registered`/`Heartbeat`, results, progress and anything unparseable).
    Frame {
        /// The connection it arrived on.
        connection: u64,
        /// The worker id of that connection, once it registered.
        worker_id: Option<String>,
        /// The frame, verbatim.
        text: String,
    },
    /// A text frame was written to a worker (a command, from any sender, or a
    /// `worker.registered`/`worker.rejected` answer).
    Sent {
        /// The connection it was written to.
        connection: u64,
        /// The worker id of that connection, once it registered.
        worker_id: Option<String>,
        /// The frame, verbatim.
        text: String,
    },
    /// A binary frame arrived.
    Binary {
        /// The connection it arrived on.
        connection: u64,
        /// The frame, verbatim.
        bytes: Vec<u8>,
    },
    /// An upgraded connection ended (either side closed it, it broke, or the orchestrator stopped).
    Disconnected {
        /// The connection that ended.
        connection: u64,
    },
}

impl Event {
    fn payload_len(&self) -> usize {
        match self {
            Event::Frame { text, .. } | Event::Sent { text, .. } => text.len(),
            Event::Binary { bytes, .. } => bytes.len(),
            _ => 0,
        }
    }
}

/// An [`Event`] with when it happened and its place in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedEvent {
    /// When the orchestrator recorded it.
    pub at: Instant,
    /// Position in the log, from 0, without gaps (also across dropped events).
    pub seq: u64,
    /// What happened.
    pub event: Event,
}

/// The bounded log plus the live-feed senders. Lives behind a mutex in the shared state.
pub(crate) struct EventLog {
    events: VecDeque<TimedEvent>,
    next_seq: u64,
    payload_bytes: usize,
    subscribers: Vec<async_channel::Sender<TimedEvent>>,
}

impl EventLog {
    pub(crate) fn new() -> Self {
        EventLog { events: VecDeque::new(), next_seq: 0, payload_bytes: 0, subscribers: Vec::new() }
    }

    /// Appends an event, drops the oldest beyond the bounds and feeds subscribers.
    pub(crate) fn push(&mut self, event: Event) {
        let timed = TimedEvent { at: Instant::now(), seq: self.next_seq, event };
        self.next_seq += 1;
        self.subscribers.retain(|tx| match tx.try_send(timed.clone()) {
            Ok(()) | Err(async_channel::TrySendError::Full(_)) => true,
            Err(async_channel::TrySendError::Closed(_)) => false,
        });
        self.payload_bytes += timed.event.payload_len();
        self.events.push_back(timed);
        while self.events.len() > MAX_EVENTS || (self.payload_bytes > MAX_EVENT_PAYLOAD_BYTES && self.events.len() > 1)
        {
            if let Some(old) = self.events.pop_front() {
                self.payload_bytes -= old.event.payload_len();
            }
        }
    }

    /// The events with `seq >= since` still in the log, at most `max` of them.
    pub(crate) fn since(&self, since: u64, max: usize) -> Vec<TimedEvent> {
        let first = self.events.front().map_or(self.next_seq, |e| e.seq);
        let skip = usize::try_from(since.saturating_sub(first)).unwrap_or(usize::MAX);
        self.events.iter().skip(skip).take(max).cloned().collect()
    }

    /// The `seq` the next event will get.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub(crate) fn subscribe(&mut self) -> async_channel::Receiver<TimedEvent> {
        let (tx, rx) = async_channel::bounded(SUBSCRIBER_CAPACITY);
        self.subscribers.push(tx);
        rx
    }

    /// Ends every live feed (the orchestrator stopped).
    pub(crate) fn close_subscribers(&mut self) {
        self.subscribers.clear();
    }
}

/// One line describing an event for a person watching `cropscode dev`.
///
/// ```
/// # use cropscode_orchestrator::{print_summary, Event};
/// assert_eq!(print_summary(&Event::Disconnected { connection: 3 }), "connection 3 closed");
/// ```
pub fn print_summary(event: &Event) -> String {
    match event {
        Event::Upgrade { authorized, token_in_url } => {
            let mut line = if *authorized {
                String::from("worker connection accepted")
            } else {
                String::from("worker connection refused with HTTP 401 (missing or wrong token)")
            };
            if *token_in_url {
                line.push_str("; WARNING: a token appeared in the URL");
            }
            line
        }
        Event::Registered { worker_id, register, .. } => {
            let engines = if register.container_engines.is_empty() {
                "none".into()
            } else {
                register.container_engines.join(", ")
            };
            let cpus = if register.cpu_count == 1 { "1 CPU".into() } else { format!("{} CPUs", register.cpu_count) };
            format!(
                "worker {} registered as {worker_id} ({}/{}, {cpus}, {} RAM, engines: {engines}, agent {}, {})",
                register.name,
                register.platform,
                register.arch,
                gib(register.memory_total),
                register.agent_version,
                register.mode.as_str(),
            )
        }
        Event::Heartbeat { connection, worker_id, heartbeat } => {
            let from = worker_id.clone().unwrap_or_else(|| format!("connection {connection}"));
            let mut line = format!(
                "heartbeat from {from}: cpu {:.1}%, mem free {}",
                heartbeat.cpu_usage,
                gib(heartbeat.memory_free)
            );
            if let Some(free) = heartbeat.disk_free {
                line.push_str(&format!(", disk free {}", gib(free)));
            }
            let n = heartbeat.containers_running;
            line.push_str(&format!(", {n} container{}", if n == 1 { "" } else { "s" }));
            if let Some(status) = &heartbeat.gateway_status {
                line.push_str(&format!(", gateway {status}"));
            }
            line
        }
        Event::Frame { connection, text, .. } => {
            format!("frame from connection {connection}: {}", shorten(text, 160))
        }
        Event::Sent { connection, worker_id, text } => {
            let to = worker_id.clone().unwrap_or_else(|| format!("connection {connection}"));
            let frame = serde_json::from_str::<serde_json::Value>(text).ok();
            let field = |name: &str| frame.as_ref().and_then(|f| f.get(name)?.as_str().map(str::to_owned));
            match (field("type"), field("id")) {
                (Some(kind), Some(id)) => format!("sent to {to}: {kind} {id}"),
                (Some(kind), None) => format!("sent to {to}: {kind}"),
                _ => format!("sent to {to}: {}", shorten(text, 160)),
            }
        }
        Event::Binary { connection, bytes } => {
            format!("binary frame from connection {connection}: {} bytes", bytes.len())
        }
        Event::Disconnected { connection } => format!("connection {connection} closed"),
    }
}

fn gib(bytes: u64) -> String {
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    const MIB: f64 = 1024.0 * 1024.0;
    let b = bytes as f64;
    if b >= GIB { format!("{:.1} GiB", b / GIB) } else { format!("{:.0} MiB", b / MIB) }
}

fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cropscode_core::protocol::{Limits, Mode};

    #[test]
    fn log_is_bounded_by_count_and_bytes() {
        let mut log = EventLog::new();
        for connection in 0..(MAX_EVENTS as u64 + 5) {
            log.push(Event::Disconnected { connection });
        }
        assert_eq!(log.events.len(), MAX_EVENTS);
        assert_eq!(log.since(0, 1)[0].seq, 5);
        assert_eq!(log.since(MAX_EVENTS as u64 + 4, 10).len(), 1);
        assert!(log.since(MAX_EVENTS as u64 + 5, 10).is_empty());

        let big = "x".repeat(MAX_EVENT_PAYLOAD_BYTES / 2 + 1);
        log.push(Event::Frame { connection: 1, worker_id: None, text: big.clone() });
        log.push(Event::Frame { connection: 1, worker_id: None, text: big });
        assert!(log.payload_bytes <= MAX_EVENT_PAYLOAD_BYTES);
        assert!(matches!(log.events.back().map(|e| &e.event), Some(Event::Frame { .. })));
    }

    #[test]
    fn summaries_read_well() {
        let register = Register {
            protocol_version: 1,
            name: "pi-1".into(),
            hostname: "pi".into(),
            platform: "linux".into(),
            arch: "aarch64".into(),
            cpu_count: 4,
            memory_total: 8 * 1024 * 1024 * 1024,
            container_engines: vec!["podman".into()],
            agent_version: "0.1.0".into(),
            mode: Mode::Byom,
            worker_id: None,
            limits: Limits::DEFAULT,
        };
        let line = print_summary(&Event::Registered { connection: 1, worker_id: "w-1".into(), register });
        assert_eq!(
            line,
            "worker pi-1 registered as w-1 (linux/aarch64, 4 CPUs, 8.0 GiB RAM, engines: podman, agent 0.1.0, byom)"
        );
        let heartbeat = Heartbeat { cpu_usage: 3.24, memory_free: 1288490189, ..Heartbeat::default() };
        let line = print_summary(&Event::Heartbeat { connection: 1, worker_id: Some("w-1".into()), heartbeat });
        assert_eq!(line, "heartbeat from w-1: cpu 3.2%, mem free 1.2 GiB, 0 containers");
        let line = print_summary(&Event::Frame { connection: 2, worker_id: None, text: "é".repeat(200) });
        assert!(line.ends_with("(400 bytes)"), "{line}");
        let text = r#"{"type":"container.start","id":"c-7","params":{}}"#.to_string();
        let line = print_summary(&Event::Sent { connection: 1, worker_id: Some("w-1".into()), text });
        assert_eq!(line, "sent to w-1: container.start c-7");
    }
}
