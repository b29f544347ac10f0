//! A command id the orchestrator sends again gets the recorded result again, exactly one
//! result per delivery, and the session carries on.

use std::time::Duration;

use cropscode_tests::*;

#[test]
fn a_resent_id_gets_the_recorded_result() {
    let orchestrator = start_orchestrator();
    let worker = WorkerSpec::new(orchestrator.ws_url()).spawn();
    let reg = wait_registered(&orchestrator, None, Duration::from_secs(30)).expect("registered");
    let params = serde_json::json!({ "containerId": "no-such-container" });
    let first = block_on(orchestrator.command_with_id(
        &reg.worker_id,
        "dup-1",
        "container.start",
        params.clone(),
        Duration::from_secs(10),
    ))
    .expect("first result");
    let second = block_on(orchestrator.command_with_id(
        &reg.worker_id,
        "dup-1",
        "container.start",
        params,
        Duration::from_secs(10),
    ))
    .expect("second result");
    assert_eq!(first.to_wire(), second.to_wire(), "the re-sent id got a different answer");
    let results_for_dup = orchestrator
        .events()
        .into_iter()
        .filter(|t| {
            matches!(&t.event, cropscode_tests::orchestrator::Event::Frame { text, .. }
            if text.contains(r#""type":"result""#) && text.contains(r#""id":"dup-1""#))
        })
        .count();
    assert_eq!(results_for_dup, 2, "one result per delivery");
    worker.assert_token_absent();
}
