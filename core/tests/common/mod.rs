//! A session under test with hand-made time, in the manner of str0m's `TestRtc`:
//! every input (`Session::handle_input`) is followed by a full drain of
//! `Session::poll_output` up to its `Timeout`; frames and events are kept with
//! the instant they appeared at so tests can assert on exact timings.
#![allow(dead_code)] // each test file uses a different part of the harness

use std::time::Duration;

use cropscode_core::protocol::commands::COMMAND_NAMES;
use cropscode_core::protocol::{Command, Heartbeat, Limits, Mode, PROTOCOL_VERSION, Register};
use cropscode_core::session::{Event, Input, Output as SessionOutput, Session, SessionConfig, State};
use cropscode_core::{Frame, Instant, TransportError};
use serde_json::{Value, json};

/// A registration with plausible values.
pub fn register() -> Register {
    Register {
        protocol_version: PROTOCOL_VERSION,
        name: "pi-kitchen".into(),
        hostname: "pi".into(),
        platform: "linux".into(),
        arch: "aarch64".into(),
        cpu_count: 4,
        memory_total: 4 << 30,
        container_engines: vec!["podman".into()],
        agent_version: "0.1.0".into(),
        mode: Mode::Byom,
        worker_id: None,
        limits: Limits::DEFAULT,
    }
}

/// The default configuration without jitter, so delays are exact.
pub fn exact_config() -> SessionConfig {
    let mut config = SessionConfig::default();
    config.backoff.jitter = 0.0;
    config
}

/// A command name whose params may be empty (the protocol's typed commands
/// decide which; the tests only need one).
pub fn simple_command() -> &'static str {
    COMMAND_NAMES
        .iter()
        .copied()
        .find(|name| Command::decode(name, json!({})).is_ok())
        .expect("at least one command accepts empty params")
}

/// The text frame of a command.
pub fn command_frame(id: &str) -> String {
    json!({ "type": simple_command(), "id": id, "params": {} }).to_string()
}

pub fn secs(s: u64) -> Instant {
    Instant::from_millis(s * 1000)
}

pub fn ms(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

pub fn io_error() -> TransportError {
    TransportError::Io("connection reset".into())
}

/// Something the session put out, with when.
#[allow(clippy::large_enum_variant)] // test log; size does not matter
#[derive(Debug, Clone)]
pub enum Output {
    Sent(Frame),
    Event(Event),
}

pub struct TestSession {
    pub session: Session,
    pub now: Instant,
    pub log: Vec<(Instant, Output)>,
    /// Answer `HeartbeatDue` like a real caller (default true).
    pub answer_heartbeats: bool,
    /// Answer every ping the session sends with a pong at once (default false).
    pub peer_answers_pings: bool,
}

impl TestSession {
    pub fn new(config: SessionConfig) -> Self {
        Self::at(config, Instant::ZERO)
    }

    pub fn at(config: SessionConfig, now: Instant) -> Self {
        let session = Session::new(config, register(), now);
        let mut t = TestSession { session, now, log: Vec::new(), answer_heartbeats: true, peer_answers_pings: false };
        t.drain();
        t
    }

    pub fn state(&self) -> State {
        self.session.state()
    }

    /// Feeds one input at the current time (without draining).
    pub fn input(&mut self, input: Input<'_>) {
        self.session.handle_input(self.now, input);
    }

    /// Drains the outputs up to the deadline, answering heartbeats and pings;
    /// returns the deadline, `None` for [`Instant::NEVER`].
    pub fn drain(&mut self) -> Option<Instant> {
        let mut pinged = false;
        loop {
            let output = self.session.poll_output();
            // The peer answers once the session has sent everything it had.
            if pinged && self.peer_answers_pings && !matches!(output, SessionOutput::Transmit(_)) {
                pinged = false;
                self.session.handle_input(self.now, Input::Frame(Frame::Pong(Vec::new())));
                if matches!(output, SessionOutput::Timeout(_)) {
                    continue; // the pong moves the deadline: poll again
                }
            }
            match output {
                SessionOutput::Transmit(frame) => {
                    pinged |= matches!(frame, Frame::Ping(_));
                    self.log.push((self.now, Output::Sent(frame)));
                }
                SessionOutput::Event(event) => {
                    let heartbeat = matches!(event, Event::HeartbeatDue);
                    self.log.push((self.now, Output::Event(event)));
                    if heartbeat && self.answer_heartbeats {
                        self.session.handle_input(self.now, Input::Heartbeat(Heartbeat::default()));
                    }
                }
                SessionOutput::Timeout(deadline) => return (deadline != Instant::NEVER).then_some(deadline),
            }
        }
    }

    /// The session's next deadline (`None` when only an input can move it),
    /// draining whatever outputs are still queued into the log first.
    pub fn deadline(&mut self) -> Option<Instant> {
        self.drain()
    }

    /// The next output if it is a frame to send; anything else queued stays
    /// for the next [`drain`](Self::drain) (events are logged as they come).
    pub fn next_transmit(&mut self) -> Option<Frame> {
        match self.session.poll_output() {
            SessionOutput::Transmit(frame) => Some(frame),
            SessionOutput::Event(event) => {
                self.log.push((self.now, Output::Event(event)));
                None
            }
            SessionOutput::Timeout(_) => None,
        }
    }

    /// Jumps to the next deadline and handles it. Panics if there is none.
    pub fn step(&mut self) -> Instant {
        let deadline = self.deadline().expect("a deadline");
        self.now = self.now.max(deadline);
        self.session.handle_input(self.now, Input::Timeout);
        if let Some(next) = self.drain() {
            assert!(next > self.now, "Input::Timeout left a deadline at or before now");
        }
        self.now
    }

    /// Handles every deadline up to and including `t`, then sets the time to `t`.
    pub fn run_until(&mut self, t: Instant) {
        while self.deadline().is_some_and(|deadline| deadline <= t) {
            self.step();
        }
        assert!(t >= self.now);
        self.now = t;
    }

    /// Steps until the session emits `Connect` (which must come from a deadline).
    pub fn until_connect(&mut self) -> Instant {
        for _ in 0..1000 {
            if self.state() == State::Connecting {
                return self.now;
            }
            self.step();
        }
        panic!("no Connect");
    }

    pub fn connected(&mut self) {
        assert_eq!(self.state(), State::Connecting);
        self.input(Input::Connected);
        self.drain();
    }

    pub fn connect_failed(&mut self, error: TransportError) {
        self.input(Input::ConnectFailed(&error));
        self.drain();
    }

    pub fn disconnected(&mut self, error: TransportError) {
        self.input(Input::Disconnected(&error));
        self.drain();
    }

    pub fn frame(&mut self, frame: Frame) {
        self.input(Input::Frame(frame));
        self.drain();
    }

    pub fn text(&mut self, text: &str) {
        self.frame(Frame::Text(text.into()));
    }

    pub fn registered(&mut self, worker_id: &str) {
        self.text(&json!({ "type": "worker.registered", "workerId": worker_id }).to_string());
    }

    /// Connect (must be Connecting) and register.
    pub fn connect_and_register(&mut self) {
        self.connected();
        self.registered("w-1");
        assert_eq!(self.state(), State::Registered);
    }

    pub fn command(&mut self, id: &str) {
        self.text(&command_frame(id));
    }

    pub fn finish(&mut self, id: &str) {
        self.input(Input::CommandResult { id: id.into(), outcome: Ok(json!({ "done": id })) });
        self.drain();
    }

    /// Removes and returns everything logged so far.
    pub fn take(&mut self) -> Vec<(Instant, Output)> {
        std::mem::take(&mut self.log)
    }

    /// Removes and returns the logged text frames, parsed.
    pub fn take_texts(&mut self) -> Vec<Value> {
        self.take()
            .into_iter()
            .filter_map(|(_, o)| match o {
                Output::Sent(Frame::Text(t)) => Some(serde_json::from_str(&t).expect("the session sends JSON")),
                _ => None,
            })
            .collect()
    }

    /// Removes and returns the logged events.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.take()
            .into_iter()
            .filter_map(|(_, o)| match o {
                Output::Event(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    /// Instants at which a text frame of `type` was sent (keeps the log).
    pub fn times_of(&self, kind: &str) -> Vec<Instant> {
        self.log
            .iter()
            .filter_map(|(t, o)| match o {
                Output::Sent(Frame::Text(text)) if frame_type(text) == kind => Some(*t),
                _ => None,
            })
            .collect()
    }

    /// Instants at which an event matching `pred` was emitted (keeps the log).
    pub fn event_times(&self, pred: impl Fn(&Event) -> bool) -> Vec<Instant> {
        self.log
            .iter()
            .filter_map(|(t, o)| match o {
                Output::Event(e) if pred(e) => Some(*t),
                _ => None,
            })
            .collect()
    }

    pub fn ping_times(&self) -> Vec<Instant> {
        self.log.iter().filter_map(|(t, o)| matches!(o, Output::Sent(Frame::Ping(_))).then_some(*t)).collect()
    }

    /// The delays of every `BackingOff` so far (keeps the log).
    pub fn delays(&self) -> Vec<(Duration, bool)> {
        self.log
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Event(Event::BackingOff { delay, auth, .. }) => Some((*delay, *auth)),
                _ => None,
            })
            .collect()
    }
}

pub fn frame_type(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(String::from))
        .unwrap_or_default()
}
