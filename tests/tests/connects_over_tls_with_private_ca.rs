//! `wss://` to an orchestrator with a private CA works when the CA file is configured,
//! and fails with a TLS error (never falling back to trust) when it is not.

use std::time::Duration;

use cropscode_tests::orchestrator::{Orchestrator, OrchestratorConfig, TlsIdentity};
use cropscode_tests::*;

fn tls_orchestrator(ca: &TestCa) -> Orchestrator {
    let config = OrchestratorConfig {
        tls: Some(TlsIdentity { cert_chain_pem: ca.cert_pem.clone(), key_pem: ca.key_pem.clone() }),
        ..OrchestratorConfig::with_token(TEST_TOKEN)
    };
    block_on(Orchestrator::start(config)).expect("start TLS orchestrator")
}

#[test]
fn wss_with_the_test_ca_registers() {
    let ca = TestCa::new();
    let dir = TempDir::new("ca");
    let ca_file = ca.write_ca(dir.path());
    let orchestrator = tls_orchestrator(&ca);
    let url = orchestrator.ws_url();
    assert!(url.starts_with("wss://"), "{url}");
    let worker = WorkerSpec::new(url).env("ORCHESTRATOR_CA_FILE", ca_file.to_string_lossy()).spawn();
    let reg = wait_registered(&orchestrator, None, Duration::from_secs(30)).expect("registered over TLS");
    let answer = block_on(orchestrator.command(
        &reg.worker_id,
        "container.list-all",
        serde_json::json!({}),
        Duration::from_secs(10),
    ))
    .expect("a result over TLS");
    let containers = answer.outcome().expect("a command round trip works over TLS");
    assert!(containers["containers"].is_array(), "a container list came back: {containers}");
    worker.assert_token_absent();
}

#[test]
fn wss_without_the_ca_is_a_tls_error() {
    let ca = TestCa::new();
    let orchestrator = tls_orchestrator(&ca);
    let worker = WorkerSpec::new(orchestrator.ws_url()).spawn();
    assert!(worker.wait_for_log("TLS", Duration::from_secs(15)), "a TLS error is logged:\n{}", worker.logs());
    assert!(
        wait_registered(&orchestrator, None, Duration::from_secs(2)).is_none(),
        "registered without trusting the CA"
    );
    worker.assert_token_absent();
}
