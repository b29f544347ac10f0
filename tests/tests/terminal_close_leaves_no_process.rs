//! Every way a terminal ends leaves nothing running in the container or the
//! engine: `terminal.close` (with a foreground job, a background job and one
//! that ignores `HUP` running; also in a container with every capability
//! dropped, where only the session's own user can end its processes),
//! the shell exiting with a background job left behind, the container
//! stopping (the session ends with an end frame), and the worker shutting down.

mod streams;

use std::time::{Duration, Instant};

use cropscode_engine_api::{ExecLimits, ExecSpec};
use cropscode_tests::*;
use serde_json::json;
use streams::*;

const WAIT: Duration = Duration::from_secs(30);

/// `ps` in the container, straight from the engine (works without the worker).
fn direct_ps(t: &EngineRun, id: &str) -> String {
    let spec = ExecSpec { cmd: vec!["ps".into(), "-o".into(), "pid,args".into()], ..ExecSpec::default() };
    let out = block_on(t.client.exec(id, &spec, ExecLimits::default())).expect("ps in the container");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until no process in the container mentions `pattern`.
fn wait_gone(t: &EngineRun, id: &str, pattern: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let ps = direct_ps(t, id);
        if !ps.contains(pattern) {
            return;
        }
        assert!(Instant::now() < deadline, "`{pattern}` still runs in the container:\n{ps}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// No exec of the container is still running, as far as the engine knows.
fn no_running_exec(t: &EngineRun, id: &str) {
    let inspect = t.inspect(id).expect("the container exists");
    for exec in inspect["ExecIDs"].as_array().into_iter().flatten() {
        let exec = exec.as_str().unwrap_or_default();
        let (status, body) = t.engine_get(&format!("/exec/{exec}/json"));
        if status == 200 {
            // The `ps` of `direct_ps` may be the one still running; nothing else may.
            let args = body["ProcessConfig"]["arguments"].to_string();
            assert!(body["Running"] != true || args.contains("pid,args"), "exec {exec} still runs: {body}");
        }
    }
}

fn open(t: &EngineRun, id: &str) -> Stream<'static> {
    // The orchestrator outlives every stream of the test.
    let orchestrator: &'static _ = Box::leak(Box::new(t.orchestrator.clone()));
    let mut term =
        Stream::open_terminal(orchestrator, &t.worker_id, json!({ "containerId": id, "env": {"PS1": "prompt> "} }));
    term.wait_for("prompt> ", WAIT);
    term
}

fn close_paths(t: &mut EngineRun) {
    let tenant = t.tenant("close");
    let id = t.create_running("close", &tenant);

    // terminal.close with a background job and a foreground command running.
    let mut term = open(t, &id);
    term.run("sleep 1001 &", "prompt> ");
    // A job deaf to the hang-up: only the KILL that follows ends it.
    term.run("(trap '' HUP; exec sleep 1000) &", "prompt> ");
    term.send(b"sleep 1002\r");
    std::thread::sleep(Duration::from_millis(300));
    assert!(direct_ps(t, &id).contains("sleep 1002"));
    let closed = t.ok("terminal.close", json!({ "sessionId": term.session_id }));
    assert_eq!(closed["sessionId"], term.session_id.as_str());
    assert!(closed["exitCode"].is_i64(), "the shell's exit code is reported: {closed}");
    wait_gone(t, &id, "sleep 100");
    no_running_exec(t, &id);

    // The shell exits on its own, leaving a background job: the job is ended too.
    let mut term = open(t, &id);
    term.run("sleep 1003 &", "prompt> ");
    term.send(b"exit 0\r");
    assert_eq!(term.wait_end(WAIT), json!({ "reason": "exited", "exitCode": 0 }));
    wait_gone(t, &id, "sleep 1003");
    no_running_exec(t, &id);

    // The container stops: the session ends.
    let mut term = open(t, &id);
    term.send(b"sleep 1004\r");
    t.ok("container.stop", json!({ "containerId": id, "graceMs": 1000 }));
    let end = term.wait_end(WAIT);
    assert_eq!(end["reason"], "exited", "{end}");
    t.fails_with("not_found", "terminal.close", json!({ "sessionId": term.session_id }));

    // A hardened container (every capability dropped, uid 1000): root could not
    // touch the session's processes there; their own user can.
    let created = t.ok(
        "container.create",
        json!({
            "image": BUSYBOX, "tenant": tenant, "name": t.name("hardened"), "labels": t.labels(), "pull": "never",
            "command": ["sleep", "3600"], "user": "1000", "capDrop": ["ALL"], "securityOpt": ["no-new-privileges"],
        }),
    );
    let hardened = created["containerId"].as_str().expect("containerId").to_string();
    t.ok("container.start", json!({ "containerId": hardened }));
    let mut term = open(t, &hardened);
    term.run("sleep 1008 &", "prompt> ");
    term.send(b"sleep 1009\r");
    std::thread::sleep(Duration::from_millis(300));
    t.ok("terminal.close", json!({ "sessionId": term.session_id }));
    wait_gone(t, &hardened, "sleep 10");
    let started = t.ok(
        "container.exec.background",
        json!({ "containerId": hardened, "command": ["sh", "-c", "sleep 1010 & sleep 1011; wait"] }),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(direct_ps(t, &hardened).contains("sleep 1011"));
    let killed = t.ok("container.exec.background.kill", json!({ "execId": started["execId"] }));
    assert_eq!(killed["signal"], "TERM", "{killed}");
    wait_gone(t, &hardened, "sleep 101");

    // The worker shuts down: its sessions end first.
    t.ok("container.start", json!({ "containerId": id }));
    let mut term = open(t, &id);
    term.run("sleep 1005 &", "prompt> ");
    term.send(b"sleep 1006\r");
    std::thread::sleep(Duration::from_millis(300));
    assert!(direct_ps(t, &id).contains("sleep 1006"));
    let status = t.worker.stop().expect("the worker stops on SIGTERM");
    assert!(status.success(), "{status:?}");
    wait_gone(t, &id, "sleep 100");
    no_running_exec(t, &id);
}

#[test]
fn docker() {
    let mut run = EngineRun::start(EngineName::Docker, "close_paths");
    close_paths(&mut run);
}

#[test]
fn podman() {
    let mut run = EngineRun::start(EngineName::Podman, "close_paths");
    close_paths(&mut run);
}
