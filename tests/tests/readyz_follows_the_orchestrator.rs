//! `/readyz` says whether the worker can take commands: 200 while registered, 503 with
//! a JSON reason once the orchestrator goes away, 200 again once it is back on the same
//! address and the worker has registered again. `/healthz` stays 200 throughout: the
//! loop turns while it retries.

use std::time::Duration;

use cropscode_tests::orchestrator::{Orchestrator, OrchestratorConfig};
use cropscode_tests::*;

#[test]
fn readyz_flips_with_the_orchestrator() {
    let orchestrator = start_orchestrator();
    let addr = orchestrator.ws_addr();
    let worker =
        WorkerSpec::new(orchestrator.ws_url()).env("HEALTH_ADDR", "127.0.0.1:0").env("BACKOFF_MAX", "1s").spawn();
    wait_registered(&orchestrator, None, Duration::from_secs(30)).expect("registered");
    let health = worker.health_addr(Duration::from_secs(10));
    wait_http_status(health, "/readyz", 200, Duration::from_secs(15));

    block_on(orchestrator.stop());
    let reason = wait_http_status(health, "/readyz", 503, Duration::from_secs(10));
    let reason: serde_json::Value = serde_json::from_str(&reason).expect("a JSON reason");
    assert_eq!(reason["ready"], false);
    assert!(reason["reason"].as_str().unwrap_or_default().contains("not registered"), "{reason}");
    assert_eq!(http_get(health, "/healthz").0, 200, "the loop turns while retrying");

    let config = OrchestratorConfig { ws_addr: addr, ..OrchestratorConfig::with_token(TEST_TOKEN) };
    let revived = block_on(Orchestrator::start(config)).expect("restart on the same address");
    wait_registered(&revived, None, Duration::from_secs(15)).expect("registered again");
    wait_http_status(health, "/readyz", 200, Duration::from_secs(10));
    let (_, metrics) = http_get(health, "/metrics");
    assert!(!metrics.contains("cropscode_reconnects_total 0\n"), "a reconnect is counted:\n{metrics}");
}
