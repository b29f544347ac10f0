//! Live streams through the session: which commands the core answers itself,
//! what goes to the engine, control frames before stream data, detaching on a
//! lost connection, re-attaching from an offset, and the idle timeout — all
//! with hand-made time.

mod common;

use std::time::Duration;

use common::*;
use cropscode_core::Frame;
use cropscode_core::protocol::Heartbeat;
use cropscode_core::protocol::binary::{Channel, StreamFrame, StreamKind};
use cropscode_core::session::{AuditOutcome, Event, Input, SessionConfig, State};
use cropscode_core::stream::{StreamConfig, StreamId, StreamType};
use serde_json::{Value, json};

const MAX: usize = 64 * 1024 + 13;

fn config() -> SessionConfig {
    let streams = StreamConfig { idle_timeout: Duration::from_secs(60), id_seed: 7, ..StreamConfig::DEFAULT };
    SessionConfig { streams, ..exact_config() }
}

fn registered() -> TestSession {
    let mut t = TestSession::new(config());
    t.connect_and_register();
    t.take();
    t
}

fn send(t: &mut TestSession, id: &str, kind: &str, params: Value) {
    t.text(&json!({ "type": kind, "id": id, "params": params }).to_string());
}

/// Opens a terminal, answers the engine's part, returns its id and the result.
fn open_terminal(t: &mut TestSession, id: &str) -> (StreamId, Value) {
    send(t, id, "terminal.open", json!({ "containerId": "dev", "tenant": "acme" }));
    let stream = t
        .take_events()
        .into_iter()
        .find_map(|e| match e {
            Event::OpenStream { id: got, stream, command } => {
                assert_eq!(got, id);
                assert_eq!(command.name(), "terminal.open");
                Some(stream)
            }
            _ => None,
        })
        .expect("an OpenStream event");
    t.session.handle_input(t.now, Input::CommandResult { id: id.into(), outcome: Ok(json!({})) });
    t.drain();
    let result = result_of(t, id);
    (stream, result)
}

fn result_of(t: &mut TestSession, id: &str) -> Value {
    let texts = t.take_texts();
    texts.into_iter().find(|v| v["type"] == "result" && v["id"] == id).unwrap_or_else(|| panic!("no result for {id}"))
}

/// Binary frames sent, decoded: (kind, channel, offset, payload).
fn binaries(log: &[(cropscode_core::Instant, Output)]) -> Vec<(StreamKind, Channel, u64, Vec<u8>)> {
    log.iter()
        .filter_map(|(_, o)| match o {
            Output::Sent(Frame::Binary(bytes)) => {
                let f = StreamFrame::decode(bytes, MAX).unwrap();
                Some((f.kind, f.channel, f.offset, f.payload.to_vec()))
            }
            _ => None,
        })
        .collect()
}

/// Drains like a driver: new turns while a backlog remains.
fn pump(t: &mut TestSession) {
    t.drain();
    while t.session.has_stream_backlog() {
        t.session.handle_input(t.now, Input::Timeout);
        t.drain();
    }
}

#[test]
fn a_terminal_opens_through_the_engine_and_its_output_flows_by_offset() {
    let mut t = registered();
    let (stream, result) = open_terminal(&mut t, "c-1");
    assert_eq!(stream.kind, StreamType::Terminal);
    assert_eq!(stream.session_id, "t-7-1");
    assert_eq!(result["ok"], true);
    assert_eq!(
        result["result"],
        json!({"sessionId": "t-7-1", "channel": stream.channel, "resumed": false, "offset": 0, "lostBytes": 0})
    );
    assert_eq!(t.session.stream_reads().collect::<Vec<_>>(), [(stream.channel, 256 * 1024)]);

    t.session.handle_input(t.now, Input::StreamData { channel: stream.channel, data: b"$ " });
    t.drain();
    let frames = binaries(&t.take());
    assert_eq!(frames, [(StreamKind::Data, stream.channel, 0, b"$ ".to_vec())]);
}

#[test]
fn a_failed_open_frees_the_channel_and_answers_the_error() {
    let mut t = registered();
    send(&mut t, "c-1", "terminal.open", json!({ "containerId": "nope" }));
    t.take();
    let error = cropscode_core::protocol::WireError::new(cropscode_core::protocol::ErrorCode::NotFound, "no such");
    t.session.handle_input(t.now, Input::CommandResult { id: "c-1".into(), outcome: Err(error) });
    t.drain();
    let result = result_of(&mut t, "c-1");
    assert_eq!(result["error"]["code"], "not_found");
    assert!(t.session.streams().is_empty());
}

#[test]
fn input_from_commands_and_frames_reaches_the_engine_once() {
    let mut t = registered();
    let (stream, _) = open_terminal(&mut t, "c-1");
    send(&mut t, "c-2", "terminal.input", json!({ "sessionId": stream.session_id, "data": "ls" }));
    let result = result_of(&mut t, "c-2");
    assert_eq!(result["result"], json!({"sessionId": stream.session_id, "acceptedBytes": 2}));
    let frame = |offset, payload: &[u8]| {
        Frame::Binary(StreamFrame { kind: StreamKind::Data, channel: stream.channel, offset, payload }.encode())
    };
    t.frame(frame(0, b"ls -l\r"));
    t.frame(frame(2, b" -l\r"));
    assert!(t.take_texts().is_empty(), "re-sent input is dropped silently");
    let writes: Vec<(Channel, Vec<u8>)> = t.session.stream_writes().map(|(c, d)| (c, d.to_vec())).collect();
    assert_eq!(writes, [(stream.channel, b"ls -l\r".to_vec())]);
    t.session.handle_input(t.now, Input::StreamWritten { channel: stream.channel, written: 6 });
    assert_eq!(t.session.stream_writes().count(), 0);

    t.frame(frame(99, b"x"));
    let errors = t.take_texts();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0]["type"].as_str(), errors[0]["error"]["code"].as_str()),
        (Some("error"), Some("invalid_request"))
    );
}

#[test]
fn heartbeats_and_results_go_before_stream_data() {
    let mut t = registered();
    let (stream, _) = open_terminal(&mut t, "c-1");
    // The engine floods: a full window of output waits.
    t.session.handle_input(t.now, Input::StreamData { channel: stream.channel, data: &vec![b'x'; 256 * 1024] });
    // Before draining, a heartbeat and a command result are queued.
    t.session.handle_input(t.now, Input::Heartbeat(Heartbeat::default()));
    t.session.handle_input(t.now, Input::CommandResult { id: "c-1".into(), outcome: Ok(json!({})) }); // a duplicate: dropped
    send(&mut t, "c-3", "terminal.input", json!({ "sessionId": stream.session_id, "data": "q" }));
    let log = t.take();
    let kinds: Vec<&str> = log
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Sent(Frame::Text(text)) if text.contains("worker.heartbeat") => Some("heartbeat"),
            Output::Sent(Frame::Text(text)) if text.contains("\"result\"") => Some("result"),
            Output::Sent(Frame::Binary(_)) => Some("data"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds.first(), Some(&"heartbeat"), "{kinds:?}");
    let first_data = kinds.iter().position(|k| *k == "data").expect("data");
    let result = kinds.iter().position(|k| *k == "result").expect("result");
    assert!(result < first_data + 6, "the result waits at most one turn's budget of data: {kinds:?}");
    let per_turn: usize = binaries(&log).iter().map(|f| f.3.len()).sum();
    assert!(per_turn <= 2 * 128 * 1024, "{per_turn} bytes in two turns");
}

#[test]
fn a_lost_connection_detaches_and_reattaching_resumes_from_the_offset() {
    let mut t = registered();
    let (stream, _) = open_terminal(&mut t, "c-1");
    t.session.handle_input(t.now, Input::StreamData { channel: stream.channel, data: b"hello " });
    pump(&mut t);
    t.take();

    t.disconnected(io_error());
    // Output keeps coming while detached; nothing is sent.
    assert_eq!(t.session.stream_reads().collect::<Vec<_>>(), [(stream.channel, usize::MAX)]);
    t.session.handle_input(t.now, Input::StreamData { channel: stream.channel, data: b"world" });
    t.until_connect();
    t.connected();
    t.registered("w-1");
    assert_eq!(t.state(), State::Registered);
    assert!(binaries(&t.take()).is_empty(), "nothing is sent before the orchestrator re-attaches");

    let params = json!({ "containerId": "dev", "tenant": "acme", "sessionId": stream.session_id, "offset": 3 });
    send(&mut t, "c-2", "terminal.open", params);
    pump(&mut t);
    let log = t.take();
    let result = log
        .iter()
        .find_map(|(_, o)| match o {
            Output::Sent(Frame::Text(text)) if text.contains("c-2") => {
                Some(serde_json::from_str::<Value>(text).unwrap())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(
        result["result"],
        json!({"sessionId": stream.session_id, "channel": stream.channel, "resumed": true, "offset": 3, "lostBytes": 0})
    );
    let frames = binaries(&log);
    assert_eq!(frames[0].2, 3);
    let bytes: Vec<u8> = frames.iter().flat_map(|f| f.3.clone()).collect();
    assert_eq!(bytes, b"lo world");
}

#[test]
fn a_detached_terminal_is_closed_after_the_idle_timeout_even_while_disconnected() {
    let mut t = registered();
    let (stream, _) = open_terminal(&mut t, "c-1");
    let lost_at = t.now;
    t.disconnected(io_error());
    // Reconnects keep failing; time runs on.
    t.run_until(lost_at + Duration::from_secs(59));
    assert!(t.event_times(|e| matches!(e, Event::CloseStream { .. })).is_empty(), "not yet");
    t.run_until(lost_at + Duration::from_secs(60));
    let closes = t.event_times(|e| matches!(e, Event::CloseStream { channel } if *channel == stream.channel));
    assert_eq!(closes, [lost_at + Duration::from_secs(60)]);
    t.session.handle_input(t.now, Input::StreamEnd { channel: stream.channel, exit_code: Some(129) });
    assert!(t.session.streams().is_empty());
}

#[test]
fn close_asks_the_engine_and_answers_with_the_exit_code_at_the_end() {
    let mut t = registered();
    let (stream, _) = open_terminal(&mut t, "c-1");
    send(&mut t, "c-2", "terminal.close", json!({ "sessionId": stream.session_id }));
    let events = t.take_events();
    assert!(events.iter().any(|e| matches!(e, Event::CloseStream { channel } if *channel == stream.channel)));
    assert!(t.take_texts().is_empty(), "no answer before the end");
    t.session.handle_input(t.now, Input::StreamEnd { channel: stream.channel, exit_code: Some(0) });
    t.drain();
    let audited = t.event_times(
        |e| matches!(e, Event::Audit(r) if r.id.as_deref() == Some("c-2") && r.outcome == AuditOutcome::Ok),
    );
    assert_eq!(audited.len(), 1, "a close answered by the core is audited like any command");
    let result = result_of(&mut t, "c-2");
    assert_eq!(result["result"], json!({"sessionId": stream.session_id, "exitCode": 0}));

    send(&mut t, "c-3", "terminal.close", json!({ "sessionId": stream.session_id }));
    assert_eq!(result_of(&mut t, "c-3")["error"]["code"], "not_found");
}

#[test]
fn resize_goes_to_the_engine_for_a_live_session_only() {
    let mut t = registered();
    let (stream, _) = open_terminal(&mut t, "c-1");
    send(&mut t, "c-2", "terminal.resize", json!({ "sessionId": stream.session_id, "cols": 100, "rows": 30 }));
    let events = t.take_events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Execute { id, command } if id == "c-2" && command.name() == "terminal.resize"))
    );
    send(&mut t, "c-3", "terminal.resize", json!({ "sessionId": "t-7-99", "cols": 100, "rows": 30 }));
    assert_eq!(result_of(&mut t, "c-3")["error"]["code"], "not_found");
}

#[test]
fn the_shell_exiting_sends_an_end_frame_after_the_last_byte() {
    let mut t = registered();
    let (stream, _) = open_terminal(&mut t, "c-1");
    t.session.handle_input(t.now, Input::StreamData { channel: stream.channel, data: b"exit\r\n" });
    t.session.handle_input(t.now, Input::StreamEnd { channel: stream.channel, exit_code: Some(42) });
    pump(&mut t);
    let frames = binaries(&t.take());
    let last = frames.last().unwrap();
    assert_eq!((last.0, last.1, last.2), (StreamKind::End, stream.channel, 6));
    assert_eq!(serde_json::from_slice::<Value>(&last.3).unwrap(), json!({"reason": "exited", "exitCode": 42}));
    assert!(t.session.streams().is_empty());
}

#[test]
fn a_display_opens_and_is_closed_when_the_connection_drops() {
    let mut t = registered();
    send(&mut t, "c-1", "display.open", json!({ "containerId": "dev" }));
    let stream = t
        .take_events()
        .into_iter()
        .find_map(|e| match e {
            Event::OpenStream { stream, .. } => Some(stream),
            _ => None,
        })
        .unwrap();
    assert_eq!(stream.kind, StreamType::Display);
    t.session.handle_input(t.now, Input::CommandResult { id: "c-1".into(), outcome: Ok(Value::Null) });
    t.drain();
    assert_eq!(result_of(&mut t, "c-1")["result"], json!({"sessionId": stream.session_id, "channel": stream.channel}));
    t.disconnected(io_error());
    assert_eq!(t.event_times(|e| matches!(e, Event::CloseStream { .. })).len(), 1);
}

#[test]
fn too_many_streams_are_busy() {
    let streams = StreamConfig { max_sessions: 1, ..StreamConfig::DEFAULT };
    let mut t = TestSession::new(SessionConfig { streams, ..exact_config() });
    t.connect_and_register();
    open_terminal(&mut t, "c-1");
    send(&mut t, "c-2", "terminal.open", json!({ "containerId": "dev" }));
    assert_eq!(result_of(&mut t, "c-2")["error"]["code"], "busy");
}
