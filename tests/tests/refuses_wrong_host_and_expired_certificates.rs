//! A certificate signed by a trusted CA is still refused when it names another host or
//! has expired: the worker logs the TLS failure, never registers, and keeps the token to
//! itself. (An unknown CA is `connects_over_tls_with_private_ca.rs`.)

use std::time::Duration;

use cropscode_tests::orchestrator::{Orchestrator, OrchestratorConfig, TlsIdentity};
use cropscode_tests::*;

/// A TLS orchestrator serving `ca`'s server certificate, and a worker that trusts `ca`.
fn worker_against(ca: &TestCa) -> (Orchestrator, WorkerProcess, TempDir) {
    let config = OrchestratorConfig {
        tls: Some(TlsIdentity { cert_chain_pem: ca.cert_pem.clone(), key_pem: ca.key_pem.clone() }),
        ..OrchestratorConfig::with_token(TEST_TOKEN)
    };
    let orchestrator = block_on(Orchestrator::start(config)).expect("start TLS orchestrator");
    let dir = TempDir::new("tls-refusal");
    let ca_file = ca.write_ca(dir.path());
    let worker = WorkerSpec::new(orchestrator.ws_url()).env("ORCHESTRATOR_CA_FILE", ca_file.to_string_lossy()).spawn();
    (orchestrator, worker, dir)
}

fn assert_refused(ca: &TestCa, why: &str) {
    let (orchestrator, worker, _dir) = worker_against(ca);
    assert!(worker.wait_for_log(why, Duration::from_secs(30)), "the log names `{why}`:\n{}", worker.logs());
    assert!(worker.logs().contains("TLS"), "a TLS error is logged:\n{}", worker.logs());
    assert!(wait_registered(&orchestrator, None, Duration::from_secs(2)).is_none(), "registered despite `{why}`");
    worker.assert_token_absent();
}

#[test]
fn a_certificate_for_another_host_is_refused() {
    assert_refused(&TestCa::with_server(&["orchestrator.example.com"], None), "certificate not valid for name");
}

#[test]
fn an_expired_certificate_is_refused() {
    assert_refused(&TestCa::with_server(&["localhost", "127.0.0.1"], Some((2021, 1, 1))), "certificate expired");
}
