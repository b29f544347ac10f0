//! A result that is larger than the transport's 16 MiB message cap once encoded still
//! gets its one `result`, and does not cost the connection. `container.exec` allows 4 MiB
//! per stream (`maxOutputBytes`), and JSON writes each control byte as a six-byte
//! `\u0000` escape (invalid UTF-8 as a three-byte U+FFFD), so 4 MiB of NUL bytes on stdout
//! encode to about 24 MiB: more than the orchestrator accepts in one message.
//!
//! Ignored while it fails (reported): the worker sends the oversized frame, the
//! orchestrator drops the connection, the worker reconnects, and the command never gets
//! an answer — against "exactly one `result` per command id" (docs/protocol.md, Envelope).

use std::time::Duration;

use cropscode_tests::orchestrator::Event;
use cropscode_tests::*;
use serde_json::json;

fn oversized_result(t: &EngineRun) {
    let id = t.create_running("big", &t.tenant("acme"));
    let answer = t.command_within(
        "container.exec",
        json!({
            "containerId": id,
            "command": ["head", "-c", "4194304", "/dev/zero"],
            "maxOutputBytes": 4194304,
        }),
        Duration::from_secs(30),
    );
    match answer.outcome() {
        Ok(v) => assert_eq!(v["exitCode"], 0, "exit code"),
        Err(e) => eprintln!("{}: oversized exec result answered {} {}", t.which.as_str(), e.code, e.message),
    }
    let dropped = t.orchestrator.events().iter().any(|e| matches!(e.event, Event::Disconnected { .. }));
    assert!(!dropped, "the connection was dropped over the oversized result");
    t.ok("container.list-all", json!({}));
}

#[test]
#[ignore = "known failure, reported: an oversized result is never answered"]
fn docker() {
    oversized_result(&EngineRun::start(EngineName::Docker, "oversized_result"));
}

#[test]
#[ignore = "known failure, reported: an oversized result is never answered"]
fn podman() {
    oversized_result(&EngineRun::start(EngineName::Podman, "oversized_result"));
}
