//! Malformed, oversized, too-deep and unknown frames each get an error reply with the right
//! code, and the session survives on the same connection.

use std::time::Duration;

use cropscode_tests::orchestrator::{Event, Orchestrator};
use cropscode_tests::*;
use serde_json::Value;

/// Sends `text` and returns the first frame the worker sends back that `matches`.
fn reply_to(orchestrator: &Orchestrator, worker_id: &str, text: String, matches: impl Fn(&Value) -> bool) -> Value {
    let seen_before = orchestrator.events().len();
    block_on(orchestrator.send_text(worker_id, text)).expect("send frame");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let replies: Vec<Value> = orchestrator
            .events()
            .into_iter()
            .skip(seen_before.saturating_sub(1))
            .filter_map(|t| match t.event {
                Event::Frame { text, .. } => serde_json::from_str(&text).ok(),
                _ => None,
            })
            .collect();
        if let Some(found) = replies.into_iter().find(|v| matches(v)) {
            return found;
        }
        assert!(std::time::Instant::now() < deadline, "no matching reply");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_result(id: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["type"] == "result" && v["id"] == id
}

fn is_error_frame(marker: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["type"] == "error" && v["error"]["message"].as_str().is_some_and(|m| m.contains(marker))
}

#[test]
fn bad_frames_get_error_replies_and_the_session_survives() {
    let orchestrator = start_orchestrator();
    let worker = WorkerSpec::new(orchestrator.ws_url()).spawn();
    let reg = wait_registered(&orchestrator, None, Duration::from_secs(30)).expect("registered");
    let id = reg.worker_id.as_str();

    let malformed = reply_to(&orchestrator, id, "{this is not json".into(), is_error_frame("malformed JSON"));
    assert_eq!(malformed["error"]["code"], "invalid_request");

    let unknown =
        reply_to(&orchestrator, id, r#"{"type":"container.teleport","id":"u-1","params":{}}"#.into(), is_result("u-1"));
    assert_eq!((unknown["ok"].clone(), unknown["error"]["code"].clone()), (false.into(), "unknown_command".into()));

    let big = format!(r#"{{"type":"container.list","id":"big-1","params":{{"pad":"{}"}}}}"#, "x".repeat(2 << 20));
    let oversized = reply_to(&orchestrator, id, big, is_result("big-1"));
    assert_eq!(oversized["error"]["code"], "frame_too_large");

    let deep =
        format!(r#"{{"type":"container.list","id":"deep-1","params":{{"x":{}{}}}}}"#, "[".repeat(64), "]".repeat(64));
    let too_deep = reply_to(&orchestrator, id, deep, is_result("deep-1"));
    assert_eq!(too_deep["error"]["code"], "invalid_request");

    let bad_params = reply_to(
        &orchestrator,
        id,
        r#"{"type":"container.start","id":"p-1","params":"not an object"}"#.into(),
        is_result("p-1"),
    );
    assert_eq!(bad_params["error"]["code"], "invalid_request");

    let no_id = reply_to(&orchestrator, id, r#"{"type":"container.list","params":{}}"#.into(), is_error_frame("id"));
    assert_eq!(no_id["error"]["code"], "invalid_request");

    block_on(orchestrator.send_binary(id, vec![0xff, 1, 2])).expect("send binary garbage");

    // Still the same connection, still answering commands and heartbeats.
    let listed = block_on(orchestrator.command(id, "container.list", serde_json::json!({}), Duration::from_secs(10)))
        .expect("a command after the bad frames is answered");
    assert!(!listed.id.is_empty());
    let workers = orchestrator.workers();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].connection, reg.connection, "the connection was replaced");
    assert_eq!(upgrade_times(&orchestrator).len(), 1);
    worker.assert_token_absent();
}
