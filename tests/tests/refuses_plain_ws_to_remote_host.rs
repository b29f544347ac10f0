//! `ws://` is allowed to loopback only: anything else is refused at startup, before any I/O.

use std::time::Duration;

use cropscode_tests::*;

#[test]
fn plain_ws_to_a_remote_host_is_refused_at_startup() {
    let mut worker = WorkerSpec::new("ws://orchestrator.example.com/worker").spawn();
    let status = worker.wait_exit(Duration::from_secs(10)).expect("the worker exits");
    assert_eq!(status.code(), Some(2), "a configuration error exits with 2");
    let logs = worker.logs();
    assert!(logs.contains("wss://"), "the message says to use wss://:\n{logs}");
    assert!(logs.contains("ORCHESTRATOR_WS_URL"), "the message names the key:\n{logs}");
    worker.assert_token_absent();
}
