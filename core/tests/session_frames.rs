//! Bad, unknown and unexpected frames get an error reply and the session survives.

mod common;

use common::*;
use cropscode_core::protocol::binary::HEADER_LEN;
use cropscode_core::protocol::{Channel, StreamFrame, StreamKind};
use cropscode_core::session::{Event, Input, State};
use cropscode_core::{Frame, TransportError};
use serde_json::{Value, json};

fn registered() -> TestSession {
    let mut t = TestSession::new(exact_config());
    t.connect_and_register();
    t.take();
    t
}

/// Sends `frame` to a registered session and returns its single reply.
fn reply_to(frame: Frame) -> Value {
    let mut t = registered();
    t.frame(frame);
    let replies = t.take_texts();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(t.state(), State::Registered);
    // Still working: commands run and heartbeats go on.
    t.command("after");
    assert!(t.take_events().iter().any(|e| matches!(e, Event::Execute { id, .. } if id == "after")));
    t.peer_answers_pings = true;
    t.run_until(secs(10));
    assert_eq!(t.times_of("worker.heartbeat"), [secs(10)]);
    replies.into_iter().next().unwrap()
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

#[test]
fn malformed_json_gets_an_error_frame() {
    let v = reply_to(Frame::Text("{not json".into()));
    assert_eq!((v["type"].as_str(), code(&v)), (Some("error"), "invalid_request"));
}

#[test]
fn oversized_text_gets_frame_too_large_for_its_id() {
    let pad = "x".repeat(1024 * 1024 + 10);
    let text = json!({ "type": simple_command(), "id": "big", "params": { "pad": pad } }).to_string();
    let v = reply_to(Frame::Text(text));
    assert_eq!((v["type"].as_str(), v["id"].as_str(), v["ok"].as_bool()), (Some("result"), Some("big"), Some(false)));
    assert_eq!(code(&v), "frame_too_large");
}

#[test]
fn unknown_type_with_id_gets_an_unknown_command_result() {
    let v = reply_to(Frame::Text(r#"{"type":"container.teleport","id":"c9","params":{}}"#.into()));
    assert_eq!((v["type"].as_str(), v["id"].as_str(), code(&v)), (Some("result"), Some("c9"), "unknown_command"));
}

#[test]
fn unknown_type_without_id_gets_an_error_frame() {
    let v = reply_to(Frame::Text(r#"{"type":"orchestrator.gossip"}"#.into()));
    assert_eq!((v["type"].as_str(), code(&v)), (Some("error"), "unknown_command"));
}

#[test]
fn command_without_id_is_invalid() {
    let v = reply_to(Frame::Text(json!({ "type": simple_command(), "params": {} }).to_string()));
    assert_eq!((v["type"].as_str(), code(&v)), (Some("error"), "invalid_request"));
}

#[test]
fn binary_frame_for_an_unknown_channel_is_not_found() {
    let bytes = StreamFrame { kind: StreamKind::Data, channel: Channel::new(7), offset: 0, payload: b"ls\r" }.encode();
    let v = reply_to(Frame::Binary(bytes));
    assert_eq!((v["type"].as_str(), code(&v)), (Some("error"), "not_found"));
    assert!(v["error"]["message"].as_str().unwrap().contains("channel 7"), "{v}");
}

#[test]
fn bad_binary_frames_are_refused() {
    let v = reply_to(Frame::Binary(vec![1, 0, 0]));
    assert_eq!(code(&v), "invalid_request");
    let v = reply_to(Frame::Binary(vec![0u8; 64 * 1024 + HEADER_LEN + 1]));
    assert_eq!(code(&v), "frame_too_large");
}

#[test]
fn commands_before_registration_are_refused() {
    let mut t = TestSession::new(exact_config());
    t.connected();
    t.take();
    t.command("early");
    let replies = t.take_texts();
    assert_eq!(replies.len(), 1);
    assert_eq!((replies[0]["id"].as_str(), code(&replies[0])), (Some("early"), "invalid_request"));
    assert!(replies[0]["error"]["message"].as_str().unwrap().contains("not registered"));
    // Not recorded: once registered, the same id runs.
    t.registered("w-1");
    t.take();
    t.command("early");
    assert!(t.take_events().iter().any(|e| matches!(e, Event::Execute { id, .. } if id == "early")));
}

#[test]
fn repeated_registered_ack_is_ignored() {
    let mut t = registered();
    t.registered("w-2");
    assert!(t.take().is_empty());
    assert_eq!(t.session.worker_id(), Some("w-1"));
}

#[test]
fn a_close_frame_is_a_disconnect() {
    let mut t = registered();
    t.frame(Frame::Close { code: 1001, reason: "going away".into() });
    assert_eq!(t.state(), State::Disconnected { retry_at: secs(1) });
    // A transport error reported afterwards for the same connection changes nothing.
    t.disconnected(TransportError::Io("eof".into()));
    assert_eq!(t.delays().len(), 1);
}

#[test]
fn frames_without_a_connection_are_ignored() {
    let mut t = TestSession::new(exact_config());
    t.text("{not json");
    t.frame(Frame::Close { code: 1000, reason: String::new() });
    assert_eq!(t.state(), State::Connecting);
    t.take();
    t.connect_failed(io_error());
    t.text(&command_frame("c1"));
    assert_eq!(t.take_texts(), Vec::<Value>::new());
}

#[test]
fn stray_inputs_in_the_wrong_state_are_ignored() {
    let mut t = registered();
    t.connect_failed(io_error());
    assert_eq!(t.state(), State::Registered);
    t.disconnected(io_error());
    t.disconnected(io_error());
    assert_eq!(t.delays().len(), 1);
    // Connecting while connected replaces the connection.
    let mut t = registered();
    t.session.handle_input(t.now, Input::Connected);
    t.drain();
    assert_eq!(t.state(), State::Registering);
    assert_eq!(t.take_texts()[0]["type"], "worker.register");
}
