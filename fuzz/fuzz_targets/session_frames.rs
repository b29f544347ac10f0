//! The session fed arbitrary frames and events: connects, registrations,
//! garbage and near-valid text frames, binary frames, time, results and
//! disconnects in any order. Never panics; every text frame it sends is JSON;
//! no command id is executing twice at once.
#![no_main]

use std::collections::BTreeSet;
use std::time::Duration;

use cropscode_core::protocol::{ErrorCode, Heartbeat, Limits, Mode, PROTOCOL_VERSION, Register, WireError};
use cropscode_core::session::{Event, Input as SessionInput, Output, Session, SessionConfig};
use cropscode_core::{Frame, Instant, TransportError};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn register() -> Register {
    Register {
        protocol_version: PROTOCOL_VERSION,
        name: "fuzz".into(),
        hostname: "fuzz".into(),
        platform: "linux".into(),
        arch: "x86_64".into(),
        cpu_count: 1,
        memory_total: 1 << 30,
        container_engines: vec![],
        agent_version: "0".into(),
        mode: Mode::Byom,
        worker_id: None,
        limits: Limits::DEFAULT,
    }
}

const NAMES: &[&str] = &["container.list-all", "container.start", "images.list", "image.check", "nope"];

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes(data);
    let mut now = Instant::ZERO;
    let mut config = SessionConfig::default();
    config.backoff.jitter = 0.0;
    config.max_in_flight = 4;
    config.journal_capacity = 8;
    config.held_results_max = 4;
    let mut session = Session::new(config, register(), now);
    let mut executing: Vec<String> = Vec::new();
    while let Some(op) = input.byte() {
        match op % 12 {
            0 => session.handle_input(now, SessionInput::Connected),
            1 => session.handle_input(now, SessionInput::Frame(Frame::Text(r#"{"type":"worker.registered","workerId":"w-1"}"#.into()))),
            2 => {
                let n = usize::from(input.byte().unwrap_or(0));
                let text = String::from_utf8_lossy(input.take(n)).into_owned();
                session.handle_input(now, SessionInput::Frame(Frame::Text(text)));
            }
            3 | 4 => {
                let b = input.byte().unwrap_or(0);
                let name = NAMES[usize::from(b) % NAMES.len()];
                let id = format!("c{}", b % 7);
                let params = if b & 0x80 == 0 { r#"{"containerId":"x","image":"busybox"}"# } else { r#"{"tenant":7}"# };
                let frame = format!(r#"{{"type":"{name}","id":"{id}","params":{params}}}"#);
                session.handle_input(now, SessionInput::Frame(Frame::Text(frame)));
            }
            5 => {
                let n = usize::from(input.byte().unwrap_or(0));
                session.handle_input(now, SessionInput::Frame(Frame::Binary(input.take(n).to_vec())));
            }
            6 => {
                now = now + Duration::from_millis(u64::from(input.byte().unwrap_or(0)) * 500);
                session.handle_input(now, SessionInput::Timeout);
            }
            7 => {
                if !executing.is_empty() {
                    let b = input.byte().unwrap_or(0);
                    let id = executing.remove(usize::from(b) % executing.len());
                    let outcome =
                        if b & 1 == 0 { Ok(Value::Null) } else { Err(WireError::new(ErrorCode::Internal, "fuzz")) };
                    session.handle_input(now, SessionInput::CommandResult { id, outcome });
                }
            }
            8 => session.handle_input(now, SessionInput::Disconnected(&TransportError::Io("fuzz".into()))),
            9 => session.handle_input(now, SessionInput::ConnectFailed(&TransportError::Timeout)),
            10 => {
                let code = u16::from_be_bytes([input.byte().unwrap_or(3), input.byte().unwrap_or(232)]);
                session.handle_input(now, SessionInput::Frame(Frame::Close { code, reason: String::new() }));
            }
            _ => session.handle_input(now, SessionInput::Frame(Frame::Ping(Vec::new()))),
        }
        // Drain like a real caller.
        loop {
            match session.poll_output() {
                Output::Transmit(Frame::Text(text)) => {
                    serde_json::from_str::<Value>(&text).expect("the session sends JSON");
                }
                Output::Transmit(_) => {}
                Output::Event(Event::Execute { id, .. }) => executing.push(id),
                Output::Event(Event::HeartbeatDue) => {
                    session.handle_input(now, SessionInput::Heartbeat(Heartbeat::default()))
                }
                Output::Event(_) => {}
                Output::Timeout(_) => break,
            }
        }
    }
    let distinct: BTreeSet<&String> = executing.iter().collect();
    assert_eq!(distinct.len(), executing.len(), "an id executing twice: {executing:?}");
});
