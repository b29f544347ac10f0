//! A refused token is reported as an auth error and retried only at the backoff cap;
//! neither the wrong token nor anything else secret appears in the logs.

use std::time::Duration;

use cropscode_tests::*;

#[test]
fn refused_token_is_an_auth_error_retried_at_the_cap() {
    let orchestrator = start_orchestrator();
    let wrong = "tok_WRONG_0123456789abcdef";
    let worker =
        WorkerSpec::new(orchestrator.ws_url()).token(wrong).env("BACKOFF_MAX", "3s").env("LOG_LEVEL", "trace").spawn();
    // The window starts at the first attempt (the worker first finds its engine).
    let first = wait_first_upgrade(&orchestrator, Duration::from_secs(60)).expect("a first attempt");
    std::thread::sleep(Duration::from_millis(7_000).saturating_sub(first.elapsed()));

    let upgrades = upgrade_times(&orchestrator);
    assert!(upgrades.iter().all(|(_, authorized)| !authorized), "the wrong token was accepted");
    // Attempts at ~0 s, ~3 s, ~6 s: straight to the 3 s cap, never 1 s, 2 s.
    assert_eq!(upgrades.len(), 3, "attempts: {:?}", upgrades.len());
    for w in upgrades.windows(2) {
        let gap = w[1].0.duration_since(w[0].0);
        assert!(gap >= Duration::from_millis(2_900) && gap <= Duration::from_millis(3_900), "gap {gap:?}");
    }
    let logs = worker.logs();
    assert!(logs.contains("401"), "the log names the HTTP status:\n{logs}");
    assert!(logs.to_lowercase().contains("token"), "the log says the token was refused:\n{logs}");
    // The secrecy check below covers the most verbose level: trace lines are really there.
    assert!(logs.contains(" TRACE "), "the worker logged at trace level:\n{logs}");
    worker.assert_token_absent();
    assert!(!logs.contains(wrong), "the refused token is not logged");
    assert_no_token_in_url(&orchestrator);
}
