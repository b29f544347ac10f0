//! `run` moving stream bytes between a fake engine and a fake orchestrator:
//! output arrives complete and in order while commands keep being answered,
//! the engine is never read beyond the session's window, input reaches the
//! engine, and the stream's end follows its last byte.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{Future, poll_fn, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use common::*;
use cropscode_core::protocol::binary::{Channel, StreamFrame, StreamKind};
use cropscode_core::protocol::{Command, Heartbeat};
use cropscode_core::session::{Event, Session};
use cropscode_core::stream::StreamId;
use cropscode_core::{
    Clock, Connector, Engine, Frame, Instant, Step, StreamRead, StreamWrite, SystemProbe, Transport, TransportError,
};
use futures_lite::future::block_on;
use futures_lite::{Stream, stream};
use serde_json::{Value, json};

const OUTPUT_BYTES: usize = 3 * 1024 * 1024;

#[derive(Default)]
struct World {
    now: Cell<u64>,
    inbox: RefCell<VecDeque<Frame>>,
    /// Text frames the worker sent, parsed, with the number of data bytes received before each.
    texts: RefCell<Vec<(usize, Value)>>,
    /// Output as received: (offset, payload).
    data: RefCell<Vec<(u64, Vec<u8>)>>,
    received: Cell<usize>,
    end: RefCell<Option<(u64, Value)>>,
    /// The engine's side.
    produced: Cell<usize>,
    largest_read: Cell<usize>,
    input: RefCell<Vec<u8>>,
    channel: Cell<Channel>,
    shutdown: Cell<bool>,
}

impl World {
    fn push_text(&self, value: Value) {
        self.inbox.borrow_mut().push_back(Frame::Text(value.to_string()));
    }

    /// The orchestrator's side of the conversation.
    fn on_sent(&self, frame: &Frame) {
        match frame {
            Frame::Text(text) => {
                let v: Value = serde_json::from_str(text).unwrap();
                if v["type"] == "worker.register" {
                    self.push_text(json!({ "type": "worker.registered", "workerId": "w-1" }));
                    self.push_text(
                        json!({ "type": "terminal.open", "id": "open", "params": { "containerId": "dev" } }),
                    );
                }
                if v["type"] == "result" && v["id"] == "open" {
                    let channel = Channel::new(v["result"]["channel"].as_u64().unwrap() as u32);
                    self.channel.set(channel);
                    let input = StreamFrame { kind: StreamKind::Data, channel, offset: 0, payload: b"echo hi\r" };
                    self.inbox.borrow_mut().push_back(Frame::Binary(input.encode()));
                }
                self.texts.borrow_mut().push((self.received.get(), v));
            }
            Frame::Binary(bytes) => {
                let f = StreamFrame::decode(bytes, 1 << 20).unwrap();
                match f.kind {
                    StreamKind::Data => {
                        self.received.set(self.received.get() + f.payload.len());
                        // A command in the middle of the flood.
                        if self.received.get() >= OUTPUT_BYTES / 2
                            && self.received.get() - f.payload.len() < OUTPUT_BYTES / 2
                        {
                            let session = "t-0-1";
                            self.push_text(json!({ "type": "terminal.input", "id": "mid", "params": { "sessionId": session, "data": "x" } }));
                        }
                        self.data.borrow_mut().push((f.offset, f.payload.to_vec()));
                    }
                    _ => {
                        *self.end.borrow_mut() = Some((f.offset, serde_json::from_slice(f.payload).unwrap()));
                        self.shutdown.set(true);
                    }
                }
            }
            _ => {}
        }
    }
}

struct FakeConnector(Rc<World>);
struct FakeTransport(Rc<World>);

impl Connector for FakeConnector {
    type Transport = FakeTransport;
    type Connect<'a> = std::future::Ready<Result<FakeTransport, TransportError>>;

    fn connect(&self) -> Self::Connect<'_> {
        ready(Ok(FakeTransport(self.0.clone())))
    }
}

impl Transport for FakeTransport {
    type Send<'a> = std::future::Ready<Result<(), TransportError>>;
    type Recv<'a> = Pin<Box<dyn Future<Output = Result<Frame, TransportError>> + 'a>>;

    fn send(&mut self, frame: Frame) -> Self::Send<'_> {
        self.0.on_sent(&frame);
        ready(Ok(()))
    }

    fn recv(&mut self) -> Self::Recv<'_> {
        let world = self.0.clone();
        Box::pin(poll_fn(move |_| match world.inbox.borrow_mut().pop_front() {
            Some(frame) => Poll::Ready(Ok(frame)),
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
            self.0.now.set(self.0.now.get().max(deadline.as_millis()));
            if self.0.now.get() > 600_000 {
                self.0.shutdown.set(true);
            }
            Poll::Ready(())
        }))
    }
}

/// A shell that floods: its output is a counter pattern, always ready, then it exits.
struct FloodEngine(Rc<World>);

impl Engine for FloodEngine {
    type Execution<'a> = Pin<Box<dyn Stream<Item = Step> + 'a>>;

    fn execute(&self, _command: Command) -> Self::Execution<'_> {
        Box::pin(stream::once(Step::Done(Ok(Value::Null))))
    }

    fn open_stream(&self, stream: StreamId, command: Command) -> Self::Execution<'_> {
        assert_eq!(command.name(), "terminal.open");
        assert_eq!(stream.session_id, "t-0-1");
        Box::pin(stream::once(Step::Done(Ok(Value::Null))))
    }

    fn poll_stream_read(&self, _channel: Channel, _cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<StreamRead> {
        let w = &self.0;
        w.largest_read.set(w.largest_read.get().max(buf.len()));
        let produced = w.produced.get();
        if produced == OUTPUT_BYTES {
            return Poll::Ready(StreamRead::End { exit_code: Some(7) });
        }
        let n = buf.len().min(OUTPUT_BYTES - produced).min(10_000);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = ((produced + i) % 251) as u8;
        }
        w.produced.set(produced + n);
        Poll::Ready(StreamRead::Data(n))
    }

    fn poll_stream_write(&self, _channel: Channel, _cx: &mut Context<'_>, data: &[u8]) -> Poll<StreamWrite> {
        let n = data.len().min(3);
        self.0.input.borrow_mut().extend_from_slice(&data[..n]);
        Poll::Ready(StreamWrite::Written(n))
    }
}

struct FakeProbe;

impl SystemProbe for FakeProbe {
    fn heartbeat(&mut self) -> Heartbeat {
        Heartbeat::default()
    }
}

#[test]
fn a_flooding_terminal_arrives_whole_while_commands_are_answered() {
    let world = Rc::new(World::default());
    let mut session = Session::new(exact_config(), register(), Instant::ZERO);
    let engine = FloodEngine(world.clone());
    let mut events = Vec::new();
    let mut on_event = |e: &Event| events.push(format!("{e:?}"));
    let shutdown = poll_fn(|_| if world.shutdown.get() { Poll::Ready(()) } else { Poll::Pending });
    block_on(cropscode_core::run(
        &mut session,
        &FakeConnector(world.clone()),
        &engine,
        &FakeClock(world.clone()),
        &mut FakeProbe,
        &mut on_event,
        shutdown,
    ));

    // Every byte, in order, at the offsets announced.
    let mut expected_offset = 0u64;
    let mut bytes = Vec::with_capacity(OUTPUT_BYTES);
    for (offset, payload) in world.data.borrow().iter() {
        assert_eq!(*offset, expected_offset, "contiguous offsets");
        expected_offset += payload.len() as u64;
        bytes.extend_from_slice(payload);
    }
    assert_eq!(bytes.len(), OUTPUT_BYTES);
    assert!(bytes.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8), "byte-exact");
    let (end_offset, end) = world.end.borrow().clone().expect("an end frame");
    assert_eq!(end_offset, OUTPUT_BYTES as u64);
    assert_eq!(end, json!({"reason": "exited", "exitCode": 7}));

    // The engine was never asked for more than the window allows.
    assert!(world.largest_read.get() <= 32 * 1024, "largest read {}", world.largest_read.get());
    // Input written in pieces, all of it, once.
    assert_eq!(world.input.borrow().as_slice(), b"echo hi\rx");
    // The command sent mid-flood was answered long before the flood ended.
    let texts = world.texts.borrow();
    let (received_before, _) = texts.iter().find(|(_, v)| v["id"] == "mid").expect("mid answered");
    assert!(
        *received_before < OUTPUT_BYTES / 2 + 512 * 1024,
        "answered after {received_before} bytes (sent at {})",
        OUTPUT_BYTES / 2
    );
    assert!(events.iter().any(|e| e.starts_with("OpenStream")));
}
