//! A minimal agent on the core alone: no sockets, no runtime, no real time.
//!
//! ```sh
//! cargo run -p cropscode-core --example minimal_agent
//! ```
//!
//! A custom agent implements four small traits and hands them to
//! [`cropscode_core::run`], which drives the session (registration,
//! heartbeats, commands, reconnects) until shutdown:
//!
//! - [`Connector`] / [`Transport`]: here an in-memory pipe to a scripted
//!   "orchestrator" that registers the worker and sends two commands;
//! - [`Engine`]: answers `container.list` from a fixed list and refuses the rest;
//! - [`Clock`]: hand-driven; sleeping jumps straight to the deadline, so the
//!   run takes no real time and is the same every time;
//! - [`SystemProbe`]: fixed heartbeat figures.
//!
//! It prints the results and exits non-zero if one is not what it should be,
//! so CI notices when the API moves under it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{Ready, poll_fn, ready};
use std::pin::Pin;
use std::process::ExitCode;
use std::rc::Rc;
use std::task::Poll;

use cropscode_core::dispatch::{OnceStep, once};
use cropscode_core::protocol::commands::{ContainerListResult, ContainerState, ContainerSummary};
use cropscode_core::protocol::{Command, ErrorCode, Heartbeat, Limits, Mode, PROTOCOL_VERSION, Register, WireError};
use cropscode_core::{Clock, Connector, Engine, Frame, Instant, Session, SessionConfig, SystemProbe, Transport};
use cropscode_core::{Event, TransportError};
use serde_json::{Value, json};

/// The orchestrator's side of the pipe: what it will send, what it received.
#[derive(Default)]
struct Orchestrator {
    to_worker: RefCell<VecDeque<Frame>>,
    results: RefCell<Vec<Value>>,
    /// Set once both results are in: the shutdown future completes.
    done: Cell<bool>,
}

impl Orchestrator {
    fn send(&self, frame: Value) {
        self.to_worker.borrow_mut().push_back(Frame::Text(frame.to_string()));
    }

    /// The script: acknowledge the registration, then send two commands.
    fn receive(&self, frame: Value) {
        match frame["type"].as_str() {
            Some("worker.register") => {
                self.send(json!({"type": "worker.registered", "workerId": "w-minimal"}));
                self.send(json!({"type": "container.list", "id": "c-1", "params": {"tenant": "acme"}}));
                self.send(json!({"type": "container.stop", "id": "c-2", "params": {"containerId": "web"}}));
            }
            Some("result") => {
                self.results.borrow_mut().push(frame);
                self.done.set(self.results.borrow().len() == 2);
            }
            _ => {} // heartbeats, progress
        }
    }
}

/// Opens the in-memory pipe. A real shell would dial TCP/TLS/WebSocket here.
struct Pipe(Rc<Orchestrator>);

impl Connector for Pipe {
    type Transport = PipeEnd;
    type Connect<'a> = Ready<Result<PipeEnd, TransportError>>;

    fn connect(&self) -> Self::Connect<'_> {
        ready(Ok(PipeEnd(self.0.clone())))
    }
}

struct PipeEnd(Rc<Orchestrator>);

impl Transport for PipeEnd {
    type Send<'a> = Ready<Result<(), TransportError>>;
    type Recv<'a> = Pin<Box<dyn Future<Output = Result<Frame, TransportError>> + 'a>>;

    fn send(&mut self, frame: Frame) -> Self::Send<'_> {
        if let Frame::Text(text) = frame {
            self.0.receive(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
        ready(Ok(()))
    }

    // Cancel-safe, as `run` requires: nothing is taken until a frame is ready.
    // No waker is registered: the hand-driven clock is always ready, so the
    // loop polls again. A real transport wakes the task when bytes arrive.
    fn recv(&mut self) -> Self::Recv<'_> {
        Box::pin(poll_fn(|_| match self.0.to_worker.borrow_mut().pop_front() {
            Some(frame) => Poll::Ready(Ok(frame)),
            None => Poll::Pending,
        }))
    }
}

/// Time moves only when the driver sleeps: straight to its deadline.
#[derive(Default)]
struct HandClock(Cell<u64>);

impl Clock for HandClock {
    type Sleep<'a> = Ready<()>;

    fn now(&self) -> Instant {
        Instant::from_millis(self.0.get())
    }

    fn sleep_until(&self, deadline: Instant) -> Self::Sleep<'_> {
        self.0.set(self.0.get().max(deadline.as_millis()));
        ready(())
    }
}

/// One pseudo container for tenant `acme`; every other command is refused.
struct FixedEngine;

impl Engine for FixedEngine {
    type Execution<'a> = OnceStep<Ready<Result<Value, WireError>>>;

    // Commands arrive decoded and validated; the answer is the command's typed
    // result, serialized. (A `PolicedEngine` in front would judge the floor first.)
    fn execute(&self, command: Command) -> Self::Execution<'_> {
        let outcome = match command {
            Command::ContainerList(list) => {
                let web = ContainerSummary {
                    container_id: "web".into(),
                    name: "acme-web".into(),
                    image: "nginx:1.27".into(),
                    tenant: Some(list.tenant),
                    state: ContainerState::Running,
                    status: "Up 2 hours".into(),
                    created_at: 1_700_000_000,
                    labels: Default::default(),
                    ports: Vec::new(),
                };
                serde_json::to_value(ContainerListResult { containers: vec![web] })
                    .map_err(|e| WireError::new(ErrorCode::Internal, e.to_string()))
            }
            other => Err(WireError::new(ErrorCode::NotFound, format!("`{}`: no such container here", other.name()))),
        };
        once(ready(outcome))
    }
}

struct FixedProbe;

impl SystemProbe for FixedProbe {
    fn heartbeat(&mut self) -> Heartbeat {
        Heartbeat { cpu_usage: 1.5, memory_free: 1 << 30, ..Heartbeat::default() }
    }
}

fn main() -> ExitCode {
    let register = Register {
        protocol_version: PROTOCOL_VERSION,
        name: "minimal".into(),
        hostname: "example".into(),
        platform: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
        cpu_count: 1,
        memory_total: 1 << 30,
        container_engines: Vec::new(),
        agent_version: env!("CARGO_PKG_VERSION").into(),
        mode: Mode::Byom,
        worker_id: None,
        limits: Limits::DEFAULT,
    };
    let orchestrator = Rc::new(Orchestrator::default());
    let clock = HandClock::default();
    let mut session = Session::new(SessionConfig::default(), register, clock.now());
    let mut on_event = |event: &Event| {
        if let Event::Registered { worker_id, .. } = event {
            println!("registered as {worker_id}");
        }
    };
    // Ends the run once the script has both results (or after an hour of
    // hand-driven time, so a broken script cannot hang CI).
    let shutdown = poll_fn(|_| match orchestrator.done.get() || clock.0.get() > 3_600_000 {
        true => Poll::Ready(()),
        false => Poll::Pending,
    });
    let connector = Pipe(orchestrator.clone());
    futures_lite::future::block_on(cropscode_core::run(
        &mut session,
        &connector,
        &FixedEngine,
        &clock,
        &mut FixedProbe,
        &mut on_event,
        shutdown,
    ));

    let results = orchestrator.results.borrow();
    for result in results.iter() {
        println!("{result}");
    }
    let by_id = |id: &str| results.iter().find(|r| r["id"] == id).cloned().unwrap_or(Value::Null);
    let (list, stop) = (by_id("c-1"), by_id("c-2"));
    let ok = list["ok"] == true
        && list["result"]["containers"][0]["containerId"] == "web"
        && stop["ok"] == false
        && stop["error"]["code"] == "not_found";
    if ok {
        println!("ok: both results as expected");
        ExitCode::SUCCESS
    } else {
        eprintln!("unexpected results: {list} / {stop}");
        ExitCode::FAILURE
    }
}
