//! An orchestrator that accepts the upgrade and drops the connection at once gets one
//! attempt per backoff step, not a hot loop: a completed upgrade alone does not reset the backoff.

use std::time::Duration;

use cropscode_tests::orchestrator::Behavior;
use cropscode_tests::*;

#[test]
fn accept_and_drop_gets_one_attempt_per_backoff_step() {
    let orchestrator = start_orchestrator();
    orchestrator.set_behavior(Behavior::AcceptAndDrop);
    let worker = WorkerSpec::new(orchestrator.ws_url()).spawn();
    // The window starts at the first attempt (the worker first finds its engine).
    let first = wait_first_upgrade(&orchestrator, Duration::from_secs(60)).expect("a first attempt");
    std::thread::sleep(Duration::from_millis(7_500).saturating_sub(first.elapsed()));

    let upgrades = upgrade_times(&orchestrator);
    // Attempts at ~0 s, ~1 s, ~3 s, ~7 s after the first.
    assert_eq!(upgrades.len(), 4, "one attempt per step, saw {} in 7.5 s", upgrades.len());
    assert!(upgrades.iter().all(|(_, authorized)| *authorized));
    let gaps: Vec<Duration> = upgrades.windows(2).map(|w| w[1].0.duration_since(w[0].0)).collect();
    for (gap, expected) in gaps.iter().zip([1u64, 2, 4]) {
        let expected = Duration::from_secs(expected);
        assert!(
            *gap >= expected - Duration::from_millis(100) && *gap <= expected + Duration::from_millis(900),
            "gaps {gaps:?} do not follow 1s, 2s, 4s"
        );
    }
    worker.assert_token_absent();
}
