//! A result that is larger than the transport's 16 MiB message cap once encoded still
//! gets its one `result`, and does not cost the connection. `container.exec` allows 4 MiB
//! per stream (`maxOutputBytes`), and JSON writes each control byte as a six-byte
//! `\u0000` escape (invalid UTF-8 as a three-byte U+FFFD), so 4 MiB of NUL bytes on stdout
//! encode to about 24 MiB: more than the orchestrator accepts in one message.
//! The worker answers such a command `frame_too_large` (docs/protocol.md § Limits,
//! "result size") instead of sending a frame the orchestrator would drop.

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
    let error = answer.outcome().expect_err("4 MiB of NUL bytes cannot fit in one frame");
    assert_eq!(error.code.as_str(), "frame_too_large", "{}", error.message);
    let dropped = t.orchestrator.events().iter().any(|e| matches!(e.event, Event::Disconnected { .. }));
    assert!(!dropped, "the connection was dropped over the oversized result");
    t.ok("container.list-all", json!({}));
}

#[test]
fn docker() {
    oversized_result(&EngineRun::start(EngineName::Docker, "oversized_result"));
}

#[test]
fn podman() {
    oversized_result(&EngineRun::start(EngineName::Podman, "oversized_result"));
}
