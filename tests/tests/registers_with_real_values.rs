//! A worker registers with every field of `worker.register` filled with the machine's real values,
//! stores the id it was given, and announces that id again after a restart.

use std::time::Duration;

use cropscode_core::protocol::{Mode, PROTOCOL_VERSION};
use cropscode_tests::*;

fn meminfo_total_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("read /proc/meminfo");
    let line = text.lines().find(|l| l.starts_with("MemTotal:")).expect("MemTotal line");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("MemTotal value");
    kib * 1024
}

fn cpuinfo_count() -> u32 {
    let text = std::fs::read_to_string("/proc/cpuinfo").expect("read /proc/cpuinfo");
    text.lines().filter(|l| l.starts_with("processor")).count() as u32
}

/// Waits (up to 5 s) for `~/.cropscode/worker.json` under `home` and parses it.
fn read_worker_json(home: &std::path::Path) -> Option<serde_json::Value> {
    let path = home.join(".cropscode/worker.json");
    for _ in 0..100 {
        if let Ok(value) = std::fs::read_to_string(&path).map(|t| serde_json::from_str(&t)) {
            return Some(value.expect("worker.json is valid JSON"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn registration_carries_every_field_with_real_values() {
    let orchestrator = start_orchestrator();
    let worker = WorkerSpec::new(orchestrator.ws_url()).env("WORKER_NAME", "itest-worker").spawn();
    let reg = wait_registered(&orchestrator, None, Duration::from_secs(30)).expect("the worker registered");
    let r = &reg.register;

    assert_eq!(r.protocol_version, PROTOCOL_VERSION);
    assert_eq!(r.name, "itest-worker");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(r.hostname, hostname.trim());
    assert_eq!(r.platform, "linux");
    assert_eq!(r.arch, worker_arch());
    assert_eq!(r.cpu_count, cpuinfo_count());
    let total = meminfo_total_bytes();
    assert!(r.memory_total.abs_diff(total) <= total / 100, "memoryTotal {} vs /proc/meminfo {total}", r.memory_total);
    assert_eq!(r.agent_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(r.mode, Mode::Byom);
    assert_eq!(r.limits, cropscode_core::protocol::Limits::DEFAULT);
    assert_eq!(r.worker_id, None, "a first registration announces no id");

    // worker.json records the id the orchestrator gave.
    let stored = read_worker_json(worker.home()).expect("worker.json written");
    assert_eq!(stored["workerId"], reg.worker_id.as_str());

    worker.assert_token_absent();
    assert_no_token_in_url(&orchestrator);
}

#[test]
fn a_restarted_worker_announces_its_stored_id() {
    let orchestrator = start_orchestrator();
    let home = TempDir::new("restart-home");
    let mut first = WorkerSpec::new(orchestrator.ws_url()).home(home.path()).spawn();
    let reg1 = wait_registered(&orchestrator, None, Duration::from_secs(30)).expect("first registration");
    // The id reaches worker.json just after the acknowledgement; stop only once it is there.
    read_worker_json(home.path()).expect("worker.json written");
    let status = first.stop().expect("the worker stops on SIGTERM");
    assert!(status.success(), "a SIGTERM'd worker exits cleanly, got {status:?}");

    let second = WorkerSpec::new(orchestrator.ws_url()).home(home.path()).spawn();
    let reg2 = wait_registered(&orchestrator, Some(reg1.connection), Duration::from_secs(30)).expect("re-registration");
    assert_eq!(reg2.register.worker_id.as_deref(), Some(reg1.worker_id.as_str()));
    assert_eq!(reg2.worker_id, reg1.worker_id);
    second.assert_token_absent();
}
