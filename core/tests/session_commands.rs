//! Command ids: executed once, results replayed, held while disconnected, bounded concurrency.

mod common;

use common::*;
use cropscode_core::protocol::{ErrorCode, WireError};
use cropscode_core::session::{Event, Input, SessionConfig, State};
use serde_json::{Value, json};

fn registered(config: SessionConfig) -> TestSession {
    let mut t = TestSession::new(config);
    t.peer_answers_pings = true;
    t.connect_and_register();
    t.take();
    t
}

fn executed(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Execute { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect()
}

fn results(texts: &[Value]) -> Vec<(String, bool, Value)> {
    texts
        .iter()
        .filter(|v| v["type"] == "result")
        .map(|v| (v["id"].as_str().unwrap().to_owned(), v["ok"].as_bool().unwrap(), v.clone()))
        .collect()
}

fn result_ids(texts: &[Value]) -> Vec<String> {
    results(texts).into_iter().map(|(id, _, _)| id).collect()
}

/// Drops the connection and connects again (not yet registered).
fn reconnect(t: &mut TestSession) {
    t.disconnected(io_error());
    t.until_connect();
    t.connected();
}

#[test]
fn a_command_runs_and_its_result_carries_the_id() {
    let mut t = registered(exact_config());
    t.command("c-17");
    let events = t.take_events();
    match events.as_slice() {
        [Event::Execute { id, command }] => {
            assert_eq!(id, "c-17");
            assert_eq!(command.name(), simple_command());
        }
        other => panic!("{other:?}"),
    }
    t.finish("c-17");
    let texts = t.take_texts();
    assert_eq!(texts, [json!({ "type": "result", "id": "c-17", "ok": true, "result": { "done": "c-17" } })]);
}

#[test]
fn failures_are_results_with_an_error() {
    let mut t = registered(exact_config());
    t.command("c1");
    t.session.handle_input(
        t.now,
        Input::CommandResult {
            id: "c1".into(),
            outcome: Err(WireError::new(ErrorCode::NotFound, "no such container")),
        },
    );
    t.drain();
    let texts = t.take_texts();
    assert_eq!(texts[0]["ok"], false);
    assert_eq!(texts[0]["error"], json!({ "code": "not_found", "message": "no such container" }));
}

#[test]
fn a_duplicate_while_executing_is_not_executed_again() {
    let mut t = registered(exact_config());
    t.command("c1");
    t.command("c1");
    t.command("c1");
    let log = t.take();
    assert_eq!(log.iter().filter(|(_, o)| matches!(o, Output::Event(Event::Execute { .. }))).count(), 1);
    assert!(log.iter().all(|(_, o)| !matches!(o, Output::Sent(_))), "nothing sent until done: {log:?}");
    t.finish("c1");
    assert_eq!(result_ids(&t.take_texts()), ["c1"]);
}

#[test]
fn a_resent_id_gets_the_recorded_result_again() {
    let mut t = registered(exact_config());
    t.command("c1");
    t.finish("c1");
    let first = t.take_texts();
    t.command("c1");
    let events_and_texts = t.take();
    assert!(!events_and_texts.iter().any(|(_, o)| matches!(o, Output::Event(Event::Execute { .. }))));
    let again: Vec<Value> = events_and_texts
        .into_iter()
        .filter_map(|(_, o)| match o {
            Output::Sent(cropscode_core::Frame::Text(t)) => Some(serde_json::from_str(&t).unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(again, first);
    // Also across a reconnect, which is when orchestrators re-send.
    reconnect(&mut t);
    t.registered("w-1");
    t.take();
    t.command("c1");
    assert_eq!(t.take_texts(), first);
}

#[test]
fn a_result_for_something_not_executing_is_dropped() {
    let mut t = registered(exact_config());
    t.finish("never-sent");
    t.command("c1");
    t.finish("c1");
    t.finish("c1");
    assert_eq!(result_ids(&t.take_texts()), ["c1"]);
}

#[test]
fn results_finished_while_disconnected_are_sent_after_reregistering() {
    let mut t = registered(exact_config());
    t.command("a");
    t.command("b");
    t.disconnected(io_error());
    t.finish("a");
    t.until_connect();
    t.finish("b");
    t.connected();
    // Nothing but the registration before the ack.
    let before: Vec<String> = t.take_texts().iter().map(|v| v["type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(before, ["worker.register"]);
    t.registered("w-1");
    let after = t.take_texts();
    assert_eq!(result_ids(&after), ["a", "b"]);
    assert_eq!(after.last().unwrap()["type"], "worker.heartbeat", "held results go out before the first heartbeat");
}

#[test]
fn a_command_still_running_after_a_reconnect_answers_on_the_new_connection() {
    let mut t = registered(exact_config());
    t.command("slow");
    assert_eq!(executed(&t.take_events()), ["slow"]);
    reconnect(&mut t);
    t.registered("w-1");
    t.command("slow"); // the orchestrator re-sends
    assert!(executed(&t.take_events()).is_empty());
    t.finish("slow");
    assert_eq!(result_ids(&t.take_texts()), ["slow"]);
}

#[test]
fn held_results_are_bounded_and_the_dropped_ones_stay_recorded() {
    let config = SessionConfig { held_results_max: 2, ..exact_config() };
    let mut t = registered(config);
    for id in ["a", "b", "c"] {
        t.command(id);
    }
    t.disconnected(io_error());
    for id in ["a", "b", "c"] {
        t.finish(id);
    }
    assert_eq!(t.session.journal().held(), 2);
    t.until_connect();
    t.connected();
    t.registered("w-1");
    assert_eq!(result_ids(&t.take_texts()), ["b", "c"]);
    t.command("a");
    let replay = results(&t.take_texts());
    assert_eq!(replay.len(), 1);
    assert_eq!((replay[0].0.as_str(), replay[0].1), ("a", true));
    assert_eq!(replay[0].2["result"], json!({ "done": "a" }));
}

#[test]
fn results_queued_when_the_connection_dies_are_kept() {
    let mut t = registered(exact_config());
    t.command("c1");
    t.take();
    // The result is queued but the caller learns of the broken socket before sending it.
    t.session.handle_input(t.now, Input::CommandResult { id: "c1".into(), outcome: Ok(json!(1)) });
    t.session.handle_input(t.now, Input::Disconnected(&io_error()));
    assert_eq!(t.next_transmit(), None);
    t.drain();
    t.until_connect();
    t.connected();
    t.registered("w-1");
    assert_eq!(result_ids(&t.take_texts()), ["c1"]);
}

#[test]
fn too_many_in_flight_get_busy_and_are_not_recorded() {
    let config = SessionConfig { max_in_flight: 2, ..exact_config() };
    let mut t = registered(config);
    t.command("a");
    t.command("b");
    t.command("c");
    let log = t.take();
    let texts: Vec<Value> = log
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Sent(cropscode_core::Frame::Text(t)) => Some(serde_json::from_str(t).unwrap()),
            _ => None,
        })
        .collect();
    let events: Vec<Event> = log
        .into_iter()
        .filter_map(|(_, o)| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(executed(&events), ["a", "b"]);
    assert_eq!(result_ids(&texts), ["c"]);
    assert_eq!(texts[0]["error"]["code"], "busy");
    t.finish("a");
    t.take();
    t.command("c");
    assert_eq!(executed(&t.take_events()), ["c"]);
}

#[test]
fn the_journal_forgets_the_oldest_beyond_its_capacity() {
    let config = SessionConfig { journal_capacity: 2, ..exact_config() };
    let mut t = registered(config);
    for id in ["a", "b", "c"] {
        t.command(id);
        t.finish(id);
    }
    t.take();
    t.command("b");
    assert!(executed(&t.take_events()).is_empty());
    t.command("a");
    assert_eq!(executed(&t.take_events()), ["a"], "beyond the journal, an id runs again");
}

#[test]
fn a_broken_frame_reusing_a_known_id_is_a_resend() {
    let mut t = registered(exact_config());
    t.command("c1");
    t.text(r#"{"type":"container.teleport","id":"c1"}"#);
    assert!(t.take_texts().is_empty(), "c1 is executing: no second answer");
    t.finish("c1");
    let first = t.take_texts();
    t.text(r#"{"type":"container.teleport","id":"c1"}"#);
    assert_eq!(t.take_texts(), first);
}

#[test]
fn commands_keep_running_across_a_liveness_timeout() {
    let mut t = registered(exact_config());
    t.peer_answers_pings = false;
    t.command("long");
    t.run_until(secs(45));
    assert!(matches!(t.state(), State::Disconnected { .. }));
    t.finish("long");
    t.until_connect();
    t.connected();
    t.registered("w-1");
    assert_eq!(result_ids(&t.take_texts()), ["long"]);
    assert_eq!(t.session.journal().in_flight(), 0);
}

fn audits(events: &[Event]) -> Vec<cropscode_core::session::AuditRecord> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Audit(record) => Some(record.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn every_command_frame_is_audited_once_with_its_outcome() {
    use cropscode_core::session::AuditOutcome;
    let mut t = registered(exact_config());
    t.text(r#"{"type":"container.start","id":"a-1","params":{"containerId":"web","tenant":"acme"}}"#);
    assert!(audits(&t.take_events()).is_empty(), "audited when it finishes, not when it starts");
    t.session.handle_input(
        t.now,
        Input::CommandResult {
            id: "a-1".into(),
            outcome: Err(WireError::new(ErrorCode::NotFound, "no such container")),
        },
    );
    t.drain();
    t.text(r#"{"type":"container.start","id":"a-1","params":{"containerId":"web","tenant":"acme"}}"#);
    t.text("{broken");
    t.text(r#"{"type":"container.start","id":"a-2","params":{"tenant":"acme"}}"#);
    let records = audits(&t.take_events());
    assert_eq!(records.len(), 4, "{records:?}");
    assert_eq!(records[0].id.as_deref(), Some("a-1"));
    assert_eq!(records[0].command, Some("container.start"));
    assert_eq!(records[0].tenant.as_deref(), Some("acme"));
    assert_eq!(records[0].target.as_deref(), Some("web"));
    assert!(matches!(&records[0].outcome, AuditOutcome::Error(e) if e.code == ErrorCode::NotFound));
    assert_eq!(records[1].outcome, AuditOutcome::Replayed);
    assert_eq!((records[2].id.as_ref(), records[2].command), (None, None));
    assert!(matches!(&records[2].outcome, AuditOutcome::Error(e) if e.code == ErrorCode::InvalidRequest));
    // Bad params of a known command: the record names the command (its params were not read).
    assert_eq!((records[3].id.as_deref(), records[3].command), (Some("a-2"), Some("container.start")));
    assert_eq!((records[3].tenant.as_ref(), records[3].target.as_ref()), (None, None));
    assert!(matches!(&records[3].outcome, AuditOutcome::Error(e) if e.code == ErrorCode::InvalidRequest));
}

#[test]
fn a_result_too_large_for_one_frame_is_answered_frame_too_large() {
    let mut t = registered(exact_config());
    t.command("huge-1");
    t.take();
    // 3 MiB of NUL bytes: 18 MiB once JSON-escaped, over the 16 MiB transport cap.
    let stdout = "\0".repeat(3 << 20);
    t.session
        .handle_input(t.now, Input::CommandResult { id: "huge-1".into(), outcome: Ok(json!({ "stdout": stdout })) });
    t.drain();
    let texts = t.take_texts();
    let answers = results(&texts);
    assert_eq!(answers.len(), 1, "exactly one result");
    let (id, ok, frame) = &answers[0];
    assert_eq!((id.as_str(), *ok), ("huge-1", false));
    assert_eq!(frame["error"]["code"], "frame_too_large", "{}", frame["error"]);
    // A re-send gets the same (small) answer.
    t.command("huge-1");
    assert_eq!(results(&t.take_texts())[0].2["error"]["code"], "frame_too_large");
}
