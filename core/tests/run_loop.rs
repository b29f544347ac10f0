//! `run` end to end over in-memory fakes: a scripted orchestrator, an engine,
//! and a clock that jumps straight to whatever deadline the loop sleeps until
//! (so time only passes when everything else is idle, and runs are exact).

mod common;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{Future, poll_fn, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use common::*;
use cropscode_core::protocol::{Command, Heartbeat, WireError};
use cropscode_core::session::{Event, Session};
use cropscode_core::{Clock, Connector, Engine, Frame, Instant, Step, SystemProbe, Transport, TransportError};
use futures_lite::future::block_on;
use futures_lite::{Stream, StreamExt, stream};
use serde_json::{Value, json};

/// Test time never runs past this; reaching it ends the run (a hang guard).
const END_OF_TIME: u64 = 3_600_000;

type Script = dyn Fn(&World, usize, &Value);

/// The orchestrator side: what the worker sent, what it will receive.
#[derive(Default)]
struct World {
    now: Cell<u64>,
    connection: Cell<usize>,
    connects: RefCell<Vec<u64>>,
    connect_errors: RefCell<VecDeque<TransportError>>,
    sent: RefCell<Vec<(u64, usize, Frame)>>,
    inbox: RefCell<VecDeque<Result<Frame, TransportError>>>,
    /// Whether the orchestrator answers pings.
    pongs: Cell<bool>,
    release_engine: Cell<bool>,
    shutdown: Cell<bool>,
}

impl World {
    fn push(&self, value: Value) {
        self.inbox.borrow_mut().push_back(Ok(Frame::Text(value.to_string())));
    }

    fn fail(&self, error: TransportError) {
        self.inbox.borrow_mut().push_back(Err(error));
    }

    /// `(time, connection, type)` of every text frame the worker sent, plus pings and closes.
    fn sent_summary(&self) -> Vec<(u64, usize, String)> {
        self.sent
            .borrow()
            .iter()
            .map(|(t, c, frame)| {
                let kind = match frame {
                    Frame::Text(text) => frame_type(text),
                    Frame::Ping(_) => "ping".into(),
                    Frame::Close { code, .. } => format!("close {code}"),
                    other => format!("{other:?}"),
                };
                (*t, *c, kind)
            })
            .collect()
    }

    fn sent_texts(&self, kind: &str) -> Vec<(usize, Value)> {
        self.sent
            .borrow()
            .iter()
            .filter_map(|(_, c, frame)| match frame {
                Frame::Text(text) => Some((*c, serde_json::from_str::<Value>(text).unwrap())),
                _ => None,
            })
            .filter(|(_, v)| v["type"] == kind)
            .collect()
    }
}

struct FakeConnector {
    world: Rc<World>,
    script: Rc<Script>,
}

impl Connector for FakeConnector {
    type Transport = FakeTransport;
    type Connect<'a> = std::future::Ready<Result<FakeTransport, TransportError>>;

    fn connect(&self) -> Self::Connect<'_> {
        let w = &self.world;
        w.connects.borrow_mut().push(w.now.get());
        if let Some(error) = w.connect_errors.borrow_mut().pop_front() {
            return ready(Err(error));
        }
        w.connection.set(w.connection.get() + 1);
        w.inbox.borrow_mut().clear();
        ready(Ok(FakeTransport { world: w.clone(), script: self.script.clone(), connection: w.connection.get() }))
    }
}

struct FakeTransport {
    world: Rc<World>,
    script: Rc<Script>,
    connection: usize,
}

impl Transport for FakeTransport {
    type Send<'a> = std::future::Ready<Result<(), TransportError>>;
    type Recv<'a> = Pin<Box<dyn Future<Output = Result<Frame, TransportError>> + 'a>>;

    fn send(&mut self, frame: Frame) -> Self::Send<'_> {
        let w = &self.world;
        assert_eq!(self.connection, w.connection.get(), "sent on a stale connection");
        w.sent.borrow_mut().push((w.now.get(), self.connection, frame.clone()));
        match &frame {
            Frame::Text(text) => (self.script)(w, self.connection, &serde_json::from_str(text).unwrap()),
            Frame::Ping(_) if w.pongs.get() => w.inbox.borrow_mut().push_back(Ok(Frame::Pong(Vec::new()))),
            _ => {}
        }
        ready(Ok(()))
    }

    fn recv(&mut self) -> Self::Recv<'_> {
        let world = self.world.clone();
        Box::pin(poll_fn(move |_| match world.inbox.borrow_mut().pop_front() {
            Some(item) => Poll::Ready(item),
            // No waker needed: the fake clock is always ready, so the loop never parks.
            None => Poll::Pending,
        }))
    }
}

struct FakeClock(Rc<World>);

impl Clock for FakeClock {
    type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

    fn now(&self) -> Instant {
        Instant::from_millis(self.0.now.get())
    }

    fn sleep_until(&self, deadline: Instant) -> Self::Sleep<'_> {
        Box::pin(poll_fn(move |_| {
            let w = &self.0;
            w.now.set(w.now.get().max(deadline.as_millis()).min(END_OF_TIME));
            if w.now.get() == END_OF_TIME {
                w.shutdown.set(true);
            }
            Poll::Ready(())
        }))
    }
}

/// Succeeds with the command's name; when `gated`, only once the world releases it.
struct FakeEngine {
    world: Rc<World>,
    gated: bool,
    /// The worker ids `registered` was told, each with the commands executed before it.
    registered: RefCell<Vec<(String, usize)>>,
    executed: Cell<usize>,
    /// What `containers_running` answers.
    running: Option<u32>,
}

impl Engine for FakeEngine {
    type Execution<'a> = Pin<Box<dyn Stream<Item = Step> + 'a>>;

    /// One progress step, then the outcome.
    fn execute(&self, command: Command) -> Self::Execution<'_> {
        let name = command.name();
        self.executed.set(self.executed.get() + 1);
        let outcome = poll_fn(move |cx| {
            if self.gated && !self.world.release_engine.get() {
                // Ask to be polled again: the release comes from the script, not from a waker.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(Step::Done(Ok::<Value, WireError>(json!({ "ran": name }))))
        });
        Box::pin(stream::once(Step::Progress(json!({ "started": name }))).chain(stream::once_future(outcome)))
    }

    fn registered(&self, worker_id: &str) {
        self.registered.borrow_mut().push((worker_id.to_owned(), self.executed.get()));
    }

    fn containers_running(&self) -> Option<u32> {
        self.running
    }
}

struct FakeProbe;

impl SystemProbe for FakeProbe {
    fn heartbeat(&mut self) -> Heartbeat {
        Heartbeat { cpu_usage: 12.5, memory_free: 1 << 30, containers_running: 2, ..Default::default() }
    }
}

/// Runs a session against `script` until the world asks for shutdown; returns the events seen.
fn run_world(world: &Rc<World>, script: Rc<Script>, gated: bool) -> Vec<(u64, String)> {
    let engine = FakeEngine::new(world, gated, None);
    run_world_with(world, script, &engine)
}

impl FakeEngine {
    fn new(world: &Rc<World>, gated: bool, running: Option<u32>) -> FakeEngine {
        FakeEngine { world: world.clone(), gated, registered: RefCell::default(), executed: Cell::new(0), running }
    }
}

fn run_world_with(world: &Rc<World>, script: Rc<Script>, engine: &FakeEngine) -> Vec<(u64, String)> {
    let mut session = Session::new(exact_config(), register(), Instant::ZERO);
    let connector = FakeConnector { world: world.clone(), script };
    let clock = FakeClock(world.clone());
    let mut events = Vec::new();
    let mut on_event = |event: &Event| {
        let name = format!("{event:?}");
        let name = name.split([' ', '(', '{']).next().unwrap_or_default().to_owned();
        events.push((world.now.get(), name));
    };
    let shutdown = poll_fn(|_| if world.shutdown.get() { Poll::Ready(()) } else { Poll::Pending });
    block_on(cropscode_core::run(&mut session, &connector, engine, &clock, &mut FakeProbe, &mut on_event, shutdown));
    assert!(world.now.get() < END_OF_TIME, "the run did not finish in test time");
    events
}

#[test]
fn the_engine_learns_its_worker_id_before_commands_and_counts_the_running_containers() {
    let world = Rc::new(World::default());
    let script: Rc<Script> =
        Rc::new(move |w: &World, connection: usize, frame: &Value| match frame["type"].as_str().unwrap() {
            "worker.register" => w.push(json!({ "type": "worker.registered", "workerId": format!("w-{connection}") })),
            "worker.heartbeat" if connection == 1 => {
                w.push(json!({ "type": simple_command(), "id": "c-1", "params": {} }));
            }
            "result" => w.fail(TransportError::Io("connection reset by peer".into())),
            "worker.heartbeat" => w.shutdown.set(true),
            _ => {}
        });
    let engine = FakeEngine::new(&world, false, Some(7));
    run_world_with(&world, script, &engine);

    assert_eq!(*engine.registered.borrow(), [("w-1".to_owned(), 0), ("w-2".to_owned(), 1)]);
    let heartbeats = world.sent_texts("worker.heartbeat");
    assert!(heartbeats.iter().all(|(_, h)| h["containersRunning"] == 7), "the engine's count, not the probe's 2");
}

fn names(events: &[(u64, String)]) -> Vec<&str> {
    events.iter().map(|(_, n)| n.as_str()).collect()
}

#[test]
fn registers_heartbeats_runs_a_command_and_reconnects_after_a_transport_error() {
    let world = Rc::new(World::default());
    let heartbeats = Rc::new(Cell::new(0));
    let script: Rc<Script> =
        Rc::new(move |w: &World, connection: usize, frame: &Value| match frame["type"].as_str().unwrap() {
            "worker.register" => w.push(json!({ "type": "worker.registered", "workerId": "w-7" })),
            "worker.heartbeat" => {
                heartbeats.set(heartbeats.get() + 1);
                match (connection, heartbeats.get()) {
                    (1, 1) => w.push(json!({ "type": simple_command(), "id": "c-1", "params": {} })),
                    (2, 3) => w.shutdown.set(true),
                    _ => {}
                }
            }
            "result" => w.fail(TransportError::Io("connection reset by peer".into())),
            "progress" => {}
            other => panic!("unexpected {other}"),
        });
    let events = run_world(&world, script, false);

    assert_eq!(*world.connects.borrow(), [0, 1_000], "reconnect after the 1 s first backoff step");
    let expected: Vec<(u64, usize, String)> = [
        (0, 1, "worker.register"),
        (0, 1, "worker.heartbeat"),
        (0, 1, "progress"),
        (0, 1, "result"),
        (1_000, 2, "worker.register"),
        (1_000, 2, "worker.heartbeat"),
        (11_000, 2, "worker.heartbeat"),
        (11_000, 2, "close 1000"),
    ]
    .into_iter()
    .map(|(t, c, k)| (t, c, k.to_owned()))
    .collect();
    assert_eq!(world.sent_summary(), expected);

    let registers = world.sent_texts("worker.register");
    assert!(registers[0].1.get("workerId").is_none());
    assert_eq!(registers[1].1["workerId"], "w-7", "the id from the first ack is reused");
    let result = &world.sent_texts("result")[0].1;
    assert_eq!(*result, json!({ "type": "result", "id": "c-1", "ok": true, "result": { "ran": simple_command() } }));
    let progress = &world.sent_texts("progress")[0].1;
    assert_eq!(*progress, json!({ "type": "progress", "id": "c-1", "progress": { "started": simple_command() } }));
    let heartbeat = &world.sent_texts("worker.heartbeat")[0].1;
    assert_eq!((heartbeat["cpuUsage"].as_f64(), heartbeat["containersRunning"].as_u64()), (Some(12.5), Some(2)));

    assert_eq!(
        names(&events),
        [
            "Connect",
            "Registered",
            "HeartbeatDue",
            "Execute",
            "Audit",
            "BackingOff",
            "Connect",
            "Registered",
            "HeartbeatDue",
            "HeartbeatDue"
        ]
    );
}

#[test]
fn a_command_running_across_a_reconnect_answers_on_the_new_connection() {
    let world = Rc::new(World::default());
    let script: Rc<Script> = Rc::new(|w: &World, connection: usize, frame: &Value| match frame["type"].as_str() {
        Some("worker.register") => w.push(json!({ "type": "worker.registered", "workerId": "w-7" })),
        Some("worker.heartbeat") if connection == 1 => {
            w.push(json!({ "type": simple_command(), "id": "slow", "params": {} }));
            w.fail(TransportError::Closed { code: 1001, reason: "restarting".into() });
        }
        Some("worker.heartbeat") => w.release_engine.set(true),
        Some("result") => w.shutdown.set(true),
        _ => {}
    });
    run_world(&world, script, true);
    let results = world.sent_texts("result");
    assert_eq!(results.len(), 1);
    assert_eq!((results[0].0, results[0].1["id"].as_str()), (2, Some("slow")));
}

#[test]
fn a_silent_orchestrator_is_detected_and_replaced() {
    let world = Rc::new(World::default());
    let script: Rc<Script> = Rc::new(|w: &World, connection: usize, frame: &Value| {
        if frame["type"] == "worker.register" {
            w.push(json!({ "type": "worker.registered", "workerId": "w-7" }));
            if connection == 2 {
                w.shutdown.set(true);
            }
        }
    });
    let events = run_world(&world, script, false);
    assert_eq!(*world.connects.borrow(), [0, 46_000], "dead at 45 s, then the 1 s backoff");
    let pings: Vec<u64> = world.sent_summary().into_iter().filter(|(_, _, k)| k == "ping").map(|(t, _, _)| t).collect();
    assert_eq!(pings, [15_000, 30_000]);
    assert!(names(&events).contains(&"Disconnect"));
}

#[test]
fn connect_failures_back_off_and_shutdown_without_a_connection_sends_nothing() {
    let world = Rc::new(World::default());
    world.connect_errors.borrow_mut().extend([
        TransportError::Io("refused".into()),
        TransportError::Io("refused".into()),
        TransportError::Auth { status: 401 },
        TransportError::Io("refused".into()),
    ]);
    world.pongs.set(true);
    let script: Rc<Script> = Rc::new(|_: &World, _: usize, _: &Value| {});
    // Shut down during the last backoff step (the loop wakes at 63 s and sees it).
    let events = run_world_until(&world, script, 50_000);
    assert_eq!(*world.connects.borrow(), [0, 1_000, 3_000, 33_000, 63_000]);
    assert!(names(&events).iter().filter(|n| **n == "BackingOff").count() >= 4);
}

/// Like `run_world`, but shuts down when test time reaches `until`.
fn run_world_until(world: &Rc<World>, script: Rc<Script>, until: u64) -> Vec<(u64, String)> {
    let w = world.clone();
    let script: Rc<Script> = Rc::new(move |world: &World, connection: usize, frame: &Value| {
        script(world, connection, frame);
        if world.now.get() >= until {
            world.shutdown.set(true);
        }
    });
    let mut session = Session::new(exact_config(), register(), Instant::ZERO);
    let connector = FakeConnector { world: w.clone(), script };
    let engine = FakeEngine::new(&w, false, None);
    let clock = FakeClock(w.clone());
    let mut events = Vec::new();
    let mut on_event = |event: &Event| {
        let name = format!("{event:?}");
        events.push((w.now.get(), name.split([' ', '(', '{']).next().unwrap_or_default().to_owned()));
    };
    let shutdown = poll_fn(|_| if w.now.get() >= until { Poll::Ready(()) } else { Poll::Pending });
    block_on(cropscode_core::run(&mut session, &connector, &engine, &clock, &mut FakeProbe, &mut on_event, shutdown));
    assert!(world.sent.borrow().iter().all(|(_, _, f)| !matches!(f, Frame::Close { .. })));
    events
}
