//! With a TLS identity the orchestrator serves `wss://localhost`; a client trusting the
//! test CA registers and runs a command, one that does not fails the handshake.

mod common;

use common::*;
use cropscode_core::protocol::{CommandResult as WireResult, Outgoing};
use cropscode_orchestrator::{Orchestrator, OrchestratorConfig, TlsIdentity};
use futures_lite::future::zip;
use serde_json::json;

#[test]
fn wss_round_trip_with_the_test_ca() {
    smol::block_on(async {
        let ca = TestCa::new();
        let tls = TlsIdentity { cert_chain_pem: ca.leaf_pem.clone(), key_pem: ca.leaf_key_pem.clone() };
        let config = OrchestratorConfig { tls: Some(tls), ..OrchestratorConfig::with_token(TOKEN) };
        let orchestrator = Orchestrator::start(config).await.expect("start");
        let addr = orchestrator.ws_addr();
        assert_eq!(orchestrator.ws_url(), format!("wss://localhost:{}/worker", addr.port()));

        let refused = connect_tls(&ca, addr, None).await.expect_err("no token over TLS");
        assert_eq!(refusal_status(&refused), Some(401));
        let stranger = TestCa::new();
        assert!(connect_tls(&stranger, addr, Some(TOKEN)).await.is_err(), "an untrusted CA was accepted");

        let mut ws = connect_tls(&ca, addr, Some(TOKEN)).await.expect("wss upgrade");
        ws.send(frame(Outgoing::Register(register("tls-worker", None)))).await.unwrap();
        let ack = next_json(&mut ws).await.expect("ack");
        let id = ack["workerId"].as_str().expect("worker id").to_string();
        let worker = async {
            let command = next_json(&mut ws).await.expect("command");
            let answer = WireResult::from_outcome(command["id"].as_str().unwrap().into(), Ok(json!([])));
            ws.send(frame(Outgoing::Result(answer))).await.unwrap();
        };
        let (result, ()) = zip(orchestrator.command(&id, "container.list", json!({}), WAIT), worker).await;
        assert_eq!(result.expect("result over TLS").result, Some(json!([])));
        orchestrator.stop().await;
    });
}

#[test]
fn a_bad_identity_is_an_error_at_start() {
    smol::block_on(async {
        let tls = TlsIdentity { cert_chain_pem: "not a pem".into(), key_pem: "nor this".into() };
        let config = OrchestratorConfig { tls: Some(tls), ..OrchestratorConfig::with_token(TOKEN) };
        let error = Orchestrator::start(config).await.err().expect("refused");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    });
}
