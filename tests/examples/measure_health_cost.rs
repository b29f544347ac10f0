//! What the health listener costs: the idle resident memory (`VmRSS` in
//! `/proc/<pid>/status`) of a release worker registered with the local orchestrator,
//! without and with `HEALTH_ADDR`, after the same settling time; with the listener,
//! after a few `/metrics`, `/readyz` and `/healthz` requests. Prints figures only.
//!
//! ```text
//! cargo run -p cropscode-tests --example measure_health_cost
//! ```

use std::time::Duration;

use cropscode_tests::*;

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB")
}

fn idle_rss(health: bool) -> u64 {
    let orchestrator = start_orchestrator();
    let mut spec = WorkerSpec::new(orchestrator.ws_url()).bin(cropscode_release_bin()).env("LOG_LEVEL", "info");
    if health {
        spec = spec.env("HEALTH_ADDR", "127.0.0.1:0");
    }
    let worker = spec.spawn();
    wait_registered(&orchestrator, None, Duration::from_secs(30)).expect("registered");
    if health {
        let addr = worker.health_addr(Duration::from_secs(10));
        for _ in 0..20 {
            for path in ["/metrics", "/readyz", "/healthz"] {
                assert_eq!(http_get(addr, path).0, 200, "{path}");
            }
        }
    }
    // Two heartbeats and the engine checks settle.
    std::thread::sleep(Duration::from_secs(12));
    vm_rss_kib(worker.pid().expect("running"))
}

fn main() {
    let runs = 3;
    let without: Vec<u64> = (0..runs).map(|_| idle_rss(false)).collect();
    let with: Vec<u64> = (0..runs).map(|_| idle_rss(true)).collect();
    let median = |v: &[u64]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v[v.len() / 2]
    };
    println!("idle VmRSS without HEALTH_ADDR: {without:?} KiB (median {})", median(&without));
    println!("idle VmRSS with    HEALTH_ADDR: {with:?} KiB (median {})", median(&with));
    println!("difference (median): {} KiB", median(&with) as i64 - median(&without) as i64);
}
