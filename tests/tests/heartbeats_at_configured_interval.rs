//! Heartbeats arrive at the configured interval and carry the machine's real figures.

use std::time::Duration;

use cropscode_tests::orchestrator::Event;
use cropscode_tests::*;

#[test]
fn heartbeats_arrive_every_interval_with_real_figures() {
    let orchestrator = start_orchestrator();
    let worker = WorkerSpec::new(orchestrator.ws_url()).env("HEARTBEAT_INTERVAL", "1s").spawn();
    let reg = wait_registered(&orchestrator, None, Duration::from_secs(30)).expect("registered");

    let heartbeat_count = || {
        orchestrator
            .events()
            .into_iter()
            .filter_map(|t| match t.event {
                Event::Heartbeat { connection, heartbeat, .. } if connection == reg.connection => {
                    Some((t.at, heartbeat))
                }
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while heartbeat_count().len() < 6 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let beats = heartbeat_count();
    assert!(beats.len() >= 6, "expected 6 heartbeats, got {}", beats.len());

    // The first comes right after registering, then one per interval.
    assert!(beats[0].0.duration_since(reg.at) < Duration::from_millis(900), "first heartbeat is immediate");
    let mut gaps: Vec<Duration> = beats.windows(2).map(|w| w[1].0.duration_since(w[0].0)).collect();
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    assert!(
        median >= Duration::from_millis(900) && median <= Duration::from_millis(1300),
        "median heartbeat gap {median:?} is not the configured 1s (gaps {gaps:?})"
    );

    let total = reg.register.memory_total;
    for (_, hb) in &beats {
        assert!((0.0..=100.0).contains(&hb.cpu_usage), "cpuUsage {} out of 0–100", hb.cpu_usage);
        assert!(hb.memory_free > 0 && hb.memory_free <= total, "memoryFree {} vs total {total}", hb.memory_free);
        let disk_total = hb.disk_total.expect("diskTotal reported for the data dir's disk");
        let disk_free = hb.disk_free.expect("diskFree reported");
        assert!(disk_total > 0 && disk_free <= disk_total, "disk {disk_free}/{disk_total}");
    }
    worker.assert_token_absent();
}
