//! The heartbeat's `containersRunning` is the number of running containers the worker
//! manages, taken from the engine: it follows starts, stops and removals, and never
//! counts the machine's other containers (one runs unmanaged throughout) nor the
//! worker's created-but-not-started ones.

use std::time::{Duration, Instant};

use cropscode_tests::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

fn heartbeat_count(t: &EngineRun) {
    let _foreign = t.unmanaged("foreign", &[]);
    let tenant = t.tenant("acme");
    t.wait_containers_running(Instant::now(), 0, WAIT);

    let a = t.create_running("a", &tenant);
    let b = t.create_running("b", &t.tenant("other"));
    let _created_only = t.create("c", &tenant);
    t.wait_containers_running(Instant::now(), 2, WAIT);

    let since = Instant::now();
    t.ok("container.stop", json!({ "containerId": a, "graceMs": 1000 }));
    t.wait_containers_running(since, 1, WAIT);

    let since = Instant::now();
    t.ok("container.remove", json!({ "containerId": b, "force": true }));
    t.wait_containers_running(since, 0, WAIT);
}

engine_tests!(heartbeat_count, |spec: WorkerSpec| spec.env("HEARTBEAT_INTERVAL", "1s"));
