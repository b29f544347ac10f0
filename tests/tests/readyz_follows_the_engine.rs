//! `/readyz` also needs the engine: the worker runs against a Podman API service this
//! test owns on a private socket ([`PodmanService`]); while it is killed, `/readyz`
//! answers 503 naming the engine (the worker stays registered, `/healthz` 200); once
//! the service is back on the same socket, 200 again without restarting the worker.

use std::time::Duration;

use cropscode_tests::*;

#[test]
fn readyz_flips_with_the_engine() {
    let dir = TempDir::new("readyz-podman");
    let socket = dir.path().join("podman.sock");
    let mut service = PodmanService::start(&socket);
    let orchestrator = start_orchestrator();
    let worker = WorkerSpec::new(orchestrator.ws_url())
        .engine(EngineName::Podman, &socket)
        .env("HEALTH_ADDR", "127.0.0.1:0")
        .worker_id(&unique_run("readyz", EngineName::Podman))
        .spawn();
    wait_registered(&orchestrator, None, Duration::from_secs(30)).expect("registered");
    let health = worker.health_addr(Duration::from_secs(10));
    wait_http_status(health, "/readyz", 200, Duration::from_secs(15));

    service.kill();
    let reason = wait_http_status(health, "/readyz", 503, Duration::from_secs(15));
    assert!(reason.contains("container engine"), "{reason}");
    assert_eq!(http_get(health, "/healthz").0, 200);
    assert_eq!(orchestrator.workers().len(), 1, "still registered");
    let (_, metrics) = http_get(health, "/metrics");
    assert!(metrics.contains("cropscode_engine_up 0"), "{metrics}");

    service.restart();
    wait_http_status(health, "/readyz", 200, Duration::from_secs(20));
    let (_, metrics) = http_get(health, "/metrics");
    assert!(metrics.contains("cropscode_engine_up 1"), "{metrics}");
}
