//! Property tests: arbitrary sequences of inputs (frames including garbage,
//! connects, disconnects, time, results) against the session's invariants.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use cropscode_core::protocol::Heartbeat;
use cropscode_core::session::{Event, Input as SessionInput, Output, Session, SessionConfig, State};
use cropscode_core::{Frame, Instant, TransportError};
use proptest::prelude::*;
use serde_json::{Value, json};

const IDS: &[&str] = &["c0", "c1", "c2", "c3", "c4", "c5"];

#[derive(Debug, Clone)]
enum Input {
    Connected,
    ConnectFailed(u8),
    Disconnected(u8),
    Registered,
    Rejected,
    Command(usize),
    BrokenWithId(usize),
    Garbage(String),
    Oversized(usize),
    Binary(Vec<u8>),
    Ping,
    Pong,
    Close(u16),
    Advance(u32),
    Timeout,
    Finish(usize, bool),
    Heartbeat,
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        3 => Just(Input::Connected),
        1 => any::<u8>().prop_map(Input::ConnectFailed),
        1 => any::<u8>().prop_map(Input::Disconnected),
        3 => Just(Input::Registered),
        1 => Just(Input::Rejected),
        6 => (0..IDS.len()).prop_map(Input::Command),
        1 => (0..IDS.len()).prop_map(Input::BrokenWithId),
        1 => ".{0,40}".prop_map(Input::Garbage),
        1 => (0..IDS.len()).prop_map(Input::Oversized),
        1 => proptest::collection::vec(any::<u8>(), 0..24).prop_map(Input::Binary),
        1 => Just(Input::Ping),
        1 => Just(Input::Pong),
        1 => prop_oneof![Just(1000u16), Just(1008), Just(4001), any::<u16>()].prop_map(Input::Close),
        4 => (0u32..70_000).prop_map(Input::Advance),
        4 => Just(Input::Timeout),
        4 => (0usize..8, any::<bool>()).prop_map(|(i, ok)| Input::Finish(i, ok)),
        1 => Just(Input::Heartbeat),
    ]
}

fn transport_error(kind: u8) -> TransportError {
    match kind % 5 {
        0 => TransportError::Io("reset".into()),
        1 => TransportError::Auth { status: 401 },
        2 => TransportError::Tls("bad cert".into()),
        3 => TransportError::Closed { code: 1006, reason: String::new() },
        _ => TransportError::Timeout,
    }
}

/// The harness: feeds inputs, drains like a real caller, checks invariants on every output.
struct Model {
    session: Session,
    now: Instant,
    executed: HashSet<String>,
    running: Vec<String>,
    ok_results: HashMap<String, usize>,
    redeliveries: HashMap<String, usize>,
}

impl Model {
    fn new(config: SessionConfig) -> Self {
        let mut m = Model {
            session: Session::new(config, register(), Instant::ZERO),
            now: Instant::ZERO,
            executed: HashSet::new(),
            running: Vec::new(),
            ok_results: HashMap::new(),
            redeliveries: HashMap::new(),
        };
        m.drain();
        m
    }

    /// Drains every output; returns the deadline the session ends with.
    fn drain(&mut self) -> Instant {
        loop {
            let event = match self.session.poll_output() {
                Output::Transmit(frame) => {
                    self.check_sent(&frame);
                    continue;
                }
                Output::Event(event) => event,
                Output::Timeout(deadline) => return deadline,
            };
            match event {
                Event::Execute { id, .. } => {
                    assert!(self.executed.insert(id.clone()), "{id} executed twice");
                    self.running.push(id);
                }
                Event::HeartbeatDue => {
                    self.session.handle_input(self.now, SessionInput::Heartbeat(Heartbeat::default()))
                }
                _ => {}
            }
        }
    }

    fn check_sent(&mut self, frame: &Frame) {
        let Frame::Text(text) = frame else { return };
        let value: Value = serde_json::from_str(text).expect("the session sends JSON");
        if value["type"] == "worker.heartbeat" {
            assert_eq!(self.session.state(), State::Registered, "heartbeat while not registered");
        }
        if value["type"] != "result" {
            return;
        }
        let id = value["id"].as_str().expect("results carry their id").to_owned();
        let ok = value["ok"].as_bool().expect("results say ok");
        if self.executed.contains(&id) && !self.running.contains(&id) {
            assert!(ok, "{id} executed, then answered with a refusal: {value}");
        }
        if ok {
            assert_eq!(self.session.state(), State::Registered, "result {id} sent while not registered");
            assert!(self.executed.contains(&id), "ok result for {id}, which never ran");
            let sent = self.ok_results.entry(id.clone()).or_default();
            *sent += 1;
            let allowed = 1 + self.redeliveries.get(&id).copied().unwrap_or(0);
            assert!(*sent <= allowed, "{id}: {sent} results for {allowed} deliveries");
        }
    }

    fn deliver(&mut self, id: &str, text: String) {
        if self.session.state() == State::Registered && self.executed.contains(id) {
            *self.redeliveries.entry(id.to_owned()).or_default() += 1;
        }
        self.session.handle_input(self.now, SessionInput::Frame(Frame::Text(text)));
    }

    fn apply(&mut self, input: Input) {
        let now = self.now;
        match input {
            Input::Connected => self.session.handle_input(now, SessionInput::Connected),
            Input::ConnectFailed(kind) => {
                self.session.handle_input(now, SessionInput::ConnectFailed(&transport_error(kind)))
            }
            Input::Disconnected(kind) => {
                self.session.handle_input(now, SessionInput::Disconnected(&transport_error(kind)))
            }
            Input::Registered => {
                let text = json!({ "type": "worker.registered", "workerId": "w-1" }).to_string();
                self.session.handle_input(now, SessionInput::Frame(Frame::Text(text)));
            }
            Input::Rejected => {
                let text = r#"{"type":"worker.rejected","error":{"code":"forbidden","message":"no"}}"#;
                self.session.handle_input(now, SessionInput::Frame(Frame::Text(text.into())));
            }
            Input::Command(i) => self.deliver(IDS[i], command_frame(IDS[i])),
            Input::BrokenWithId(i) => {
                self.deliver(IDS[i], json!({ "type": "no.such.command", "id": IDS[i] }).to_string())
            }
            Input::Oversized(i) => {
                let text = json!({ "type": simple_command(), "id": IDS[i], "pad": "x".repeat(300) }).to_string();
                self.deliver(IDS[i], text)
            }
            Input::Garbage(text) => self.session.handle_input(now, SessionInput::Frame(Frame::Text(text))),
            Input::Binary(bytes) => self.session.handle_input(now, SessionInput::Frame(Frame::Binary(bytes))),
            Input::Ping => self.session.handle_input(now, SessionInput::Frame(Frame::Ping(Vec::new()))),
            Input::Pong => self.session.handle_input(now, SessionInput::Frame(Frame::Pong(Vec::new()))),
            Input::Close(code) => {
                self.session.handle_input(now, SessionInput::Frame(Frame::Close { code, reason: String::new() }))
            }
            Input::Advance(ms) => self.now = now + Duration::from_millis(u64::from(ms)),
            Input::Timeout => {
                self.session.handle_input(now, SessionInput::Timeout);
                let deadline = self.drain();
                if deadline != Instant::NEVER {
                    assert!(deadline > now, "deadline {deadline:?} not after {now:?} after Input::Timeout");
                }
            }
            Input::Finish(i, ok) => {
                if !self.running.is_empty() {
                    let id = self.running.remove(i % self.running.len());
                    let outcome = if ok { Ok(json!({ "id": id })) } else { Ok(Value::Null) };
                    self.session.handle_input(now, SessionInput::CommandResult { id, outcome });
                }
            }
            Input::Heartbeat => self.session.handle_input(now, SessionInput::Heartbeat(Heartbeat::default())),
        }
        self.drain();
    }

    /// Finishes everything, reconnects and registers: every executed id must then have been answered.
    fn settle(&mut self) {
        while let Some(id) = self.running.pop() {
            self.session.handle_input(self.now, SessionInput::CommandResult { id, outcome: Ok(Value::Null) });
            self.drain();
        }
        for _ in 0..10 {
            match self.session.state() {
                State::Disconnected { retry_at } => {
                    self.now = self.now.max(retry_at);
                    self.session.handle_input(self.now, SessionInput::Timeout);
                }
                State::Connecting => self.session.handle_input(self.now, SessionInput::Connected),
                State::Registering => self.apply_registered(),
                State::Registered => break,
            }
            self.drain();
        }
        assert_eq!(self.session.state(), State::Registered);
        for id in &self.executed {
            assert!(self.ok_results.get(id).copied().unwrap_or(0) >= 1, "{id} ran but its result never went out");
        }
    }

    fn apply_registered(&mut self) {
        let text = json!({ "type": "worker.registered", "workerId": "w-1" }).to_string();
        self.session.handle_input(self.now, SessionInput::Frame(Frame::Text(text)));
    }
}

fn config(max_in_flight: usize, seed: u64) -> SessionConfig {
    let mut config =
        SessionConfig { max_in_flight, journal_capacity: 64, held_results_max: IDS.len(), ..Default::default() };
    config.limits.max_text_frame_bytes = 256;
    config.backoff.seed = seed;
    config
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn session_invariants_hold(
        inputs in proptest::collection::vec(input(), 0..80),
        max_in_flight in 1usize..4,
        seed in any::<u64>(),
    ) {
        let mut model = Model::new(config(max_in_flight, seed));
        for input in inputs {
            model.apply(input);
        }
        model.settle();
    }

    #[test]
    fn arbitrary_text_never_panics_and_gets_at_most_one_reply(text in ".{0,200}", registered in any::<bool>()) {
        let mut t = TestSession::new(exact_config());
        t.connected();
        if registered {
            t.registered("w-1");
        }
        t.take();
        t.text(&text);
        let texts = t.take_texts();
        prop_assert!(texts.len() <= 1);
        prop_assert!(t.state().is_connected());
    }

    #[test]
    fn arbitrary_binary_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut t = TestSession::new(exact_config());
        t.connect_and_register();
        t.take();
        t.frame(Frame::Binary(bytes));
        let texts = t.take_texts();
        prop_assert_eq!(texts.len(), 1);
        prop_assert_eq!(&texts[0]["type"], "error");
    }
}
