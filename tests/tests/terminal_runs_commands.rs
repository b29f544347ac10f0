//! A shell in a busybox container through the worker: typed input (binary
//! frames and `terminal.input`) reaches it once, its output comes back in
//! offset-contiguous frames, `terminal.resize` changes what `stty size` says,
//! and `exit 3` ends the session with an end frame carrying exit code 3.

mod streams;

use std::time::Duration;

use cropscode_tests::*;
use serde_json::json;
use streams::*;

const WAIT: Duration = Duration::from_secs(30);

fn shell(t: &EngineRun) {
    let tenant = t.tenant("term");
    let id = t.create_running("sh", &tenant);
    let params = json!({ "containerId": id, "tenant": tenant, "cols": 80, "rows": 24, "env": {"PS1": "prompt> "} });
    let mut term = Stream::open_terminal(&t.orchestrator, &t.worker_id, params);
    term.wait_for("prompt> ", WAIT);

    // Typed in binary frames; the answer comes back (the command line itself is echoed too).
    let out = term.run("echo hello-$((6*7))", "hello-42");
    assert!(out.contains("echo hello-$((6*7))"), "the tty echoes what was typed: {out:?}");

    // Keystrokes as a command count in the input offsets like frames.
    let typed = "echo via-$((1+1))-json\r";
    let accepted = t.ok("terminal.input", json!({ "sessionId": term.session_id, "data": typed }));
    assert_eq!(accepted, json!({ "sessionId": term.session_id, "acceptedBytes": typed.len() }));
    term.input_offset += typed.len() as u64;
    term.wait_for("via-2-json", WAIT);

    // Input already applied is dropped when sent again (a re-send after a reconnect).
    term.send_at(0, b"echo hello-$((6*7))\r");
    term.run("echo marker-$((2+3))", "marker-5");
    let hellos = term.text().matches("hello-42").count();
    assert_eq!(hellos, 1, "the re-sent input ran again:\n{}", term.text());

    // Resize reaches the TTY.
    let resized = t.ok("terminal.resize", json!({ "sessionId": term.session_id, "cols": 100, "rows": 30 }));
    assert_eq!(resized, json!({ "sessionId": term.session_id, "cols": 100, "rows": 30 }));
    let out = term.run("stty size", "30 100");
    assert!(out.contains("30 100"), "{out:?}");

    // The shell exits: an end frame with its exit code after the last byte; the session is gone.
    term.send(b"exit 3\r");
    let end = term.wait_end(WAIT);
    assert_eq!(end, json!({ "reason": "exited", "exitCode": 3 }));
    t.fails_with("not_found", "terminal.close", json!({ "sessionId": term.session_id }));
    t.fails_with("not_found", "terminal.input", json!({ "sessionId": term.session_id, "data": "x" }));

    // Another container's session cannot be re-attached through a wrong container id.
    let mut second = Stream::open_terminal(&t.orchestrator, &t.worker_id, json!({ "containerId": id }));
    second.wait_until("a prompt", WAIT, |s| !s.output.is_empty());
    let other = t.create_running("other", &tenant);
    let reattach = json!({ "containerId": other, "sessionId": second.session_id, "offset": 0 });
    t.fails_with("not_found", "terminal.open", reattach);
    let closed = t.ok("terminal.close", json!({ "sessionId": second.session_id }));
    assert_eq!(closed["sessionId"], second.session_id.as_str());

    // A stopped container cannot host a terminal.
    t.ok("container.stop", json!({ "containerId": other, "graceMs": 1000 }));
    t.fails_with("conflict", "terminal.open", json!({ "containerId": other }));
    t.fails_with("not_found", "terminal.open", json!({ "containerId": "no-such-container" }));
}

engine_tests!(shell);
