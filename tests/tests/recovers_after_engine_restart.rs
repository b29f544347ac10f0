//! An engine that goes away and comes back: the worker runs against its own Podman API
//! service started by this test on a private socket (the shared engines serve other
//! tests in parallel, so they are never stopped). Killing the service mid-way answers a
//! running exec and every new command with `engine_unavailable` (promptly, not at the
//! command's timeout) while the worker stays connected and keeps sending heartbeats;
//! once the service is started again on the same socket, commands work again without
//! restarting the worker, and the containers made before the outage are still its own.
//! (Docker gets the same treatment nowhere: stopping dockerd would break the other tests.)

use std::time::{Duration, Instant};

use cropscode_tests::*;
use serde_json::json;

/// Sends `kind` until it succeeds or `within` passes; returns the result and how long it took.
fn until_ok(t: &EngineRun, kind: &str, params: serde_json::Value, within: Duration) -> (serde_json::Value, Duration) {
    let started = Instant::now();
    loop {
        let answer = t.command_within(kind, params.clone(), Duration::from_secs(30));
        match answer.outcome() {
            Ok(v) => return (v.clone(), started.elapsed()),
            Err(e) if started.elapsed() < within => {
                eprintln!("{kind} after {:?}: {} {}", started.elapsed(), e.code, e.message);
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => panic!("{kind} still failing {within:?} after the engine came back: {} {}", e.code, e.message),
        }
    }
}

#[test]
fn podman_service_killed_and_restarted() {
    let dir = TempDir::new("private-podman");
    let socket = dir.path().join("podman.sock");
    let mut service = PodmanService::start(&socket);
    let t = EngineRun::start_with(EngineName::Podman, "engine_restart", |spec| {
        spec.engine(EngineName::Podman, &socket).env("HEARTBEAT_INTERVAL", "1s")
    });
    let tenant = t.tenant("acme");
    let before = t.create_running("before", &tenant);

    // An exec running when the engine dies is answered at once, not at its timeout.
    let exec = std::thread::scope(|scope| {
        let pending = scope.spawn(|| {
            let started = Instant::now();
            let answer = t.command_within(
                "container.exec",
                json!({ "containerId": before, "command": ["sleep", "25"], "timeoutMs": 60000 }),
                Duration::from_secs(60),
            );
            (answer, started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(1500));
        service.kill();
        pending.join().expect("exec thread")
    });
    let (answer, took) = exec;
    match answer.outcome() {
        Err(e) => assert_eq!(e.code.as_str(), "engine_unavailable", "{}", e.message),
        Ok(v) => panic!("an exec whose engine died succeeded: {v}"),
    }
    assert!(took < Duration::from_secs(15), "the exec was answered {took:?} after it started");

    // Every command while it is down: engine_unavailable, promptly.
    let down_at = Instant::now();
    for (kind, params) in [
        ("container.list-all", json!({})),
        ("container.list", json!({ "tenant": tenant })),
        ("container.start", json!({ "containerId": before })),
        ("container.exec", json!({ "containerId": before, "command": ["true"] })),
        ("image.check", json!({ "image": BUSYBOX })),
    ] {
        let started = Instant::now();
        let e = t.fails_with("engine_unavailable", kind, params);
        assert!(started.elapsed() < Duration::from_secs(10), "{kind} took {:?}: {}", started.elapsed(), e.message);
    }
    // The worker itself stays up and connected: heartbeats go on.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(t.heartbeats().iter().any(|(at, _)| *at > down_at), "no heartbeat while the engine was down");
    assert_eq!(t.orchestrator.workers().len(), 1, "the worker is still registered");

    // Back again on the same socket: the same worker uses it again.
    service.restart();
    let (all, took) = until_ok(&t, "container.list-all", json!({}), Duration::from_secs(20));
    eprintln!("commands work again {took:?} after the engine came back");
    let listed: Vec<&str> =
        all["containers"].as_array().into_iter().flatten().filter_map(|c| c["containerId"].as_str()).collect();
    assert_eq!(listed, vec![before.as_str()], "{all}");
    let out = t.ok("container.exec", json!({ "containerId": before, "command": ["echo", "back"] }));
    assert_eq!(out["stdout"], "back\n", "{out}");
    let after = t.create_running("after", &tenant);
    t.ok("container.remove", json!({ "containerId": after, "force": true }));
    t.worker.assert_token_absent();
}
