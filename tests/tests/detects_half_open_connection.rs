//! A connection whose peer stops answering (half-open TCP) is declared dead within the
//! liveness deadline and replaced, so the worker cannot stay silently offline.

use std::time::{Duration, Instant};

use cropscode_tests::orchestrator::Behavior;
use cropscode_tests::*;

#[test]
fn silent_peer_is_detected_within_the_liveness_deadline() {
    let orchestrator = start_orchestrator();
    let worker = WorkerSpec::new(orchestrator.ws_url()).env("LIVENESS_TIMEOUT", "3s").spawn();
    let first = wait_registered(&orchestrator, None, Duration::from_secs(30)).expect("registered");

    // A healthy idle connection survives well past the deadline (pings keep it alive).
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(upgrade_times(&orchestrator).len(), 1, "a healthy connection was replaced");

    let silent_from = Instant::now();
    orchestrator.set_behavior(Behavior::HalfOpen);
    let before = upgrade_times(&orchestrator).len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while upgrade_times(&orchestrator).len() == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let upgrades = upgrade_times(&orchestrator);
    assert!(upgrades.len() > before, "the worker never replaced the silent connection");
    let replaced_after = upgrades[before].0.duration_since(silent_from);
    // Dead at most 3 s after the last frame received, then a 1 s backoff step.
    assert!(
        replaced_after >= Duration::from_millis(1_500) && replaced_after <= Duration::from_millis(5_500),
        "replaced {replaced_after:?} after the peer went silent"
    );

    orchestrator.set_behavior(Behavior::Normal);
    let again = wait_registered(&orchestrator, Some(first.connection), Duration::from_secs(40)).expect("re-registered");
    assert_eq!(again.worker_id, first.worker_id);
    worker.assert_token_absent();
}
