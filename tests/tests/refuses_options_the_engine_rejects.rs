//! An option the engine refuses is `invalid_request` with the engine's message
//! (docs/protocol.md, `container.create`: "an option the engine refuses is
//! `invalid_request`"): here a network that does not exist. Podman refuses it at create;
//! Docker accepts the create and refuses at start, so whichever step fails is checked.
//! Either way the answer must not pretend the container is missing, nor be a retryable
//! `engine_unavailable` (Podman answers it with an HTTP 500; Docker with a 404 at start).

use cropscode_tests::*;
use serde_json::json;

fn unknown_network(t: &EngineRun) {
    let network = format!("no-such-network-{}", t.run);
    let created = t.command(
        "container.create",
        json!({ "image": BUSYBOX, "tenant": t.tenant("acme"), "networkMode": network, "labels": t.labels() }),
    );
    let error = match created.outcome() {
        Err(e) => e.clone(),
        Ok(v) => {
            let id = v["containerId"].as_str().unwrap_or_default().to_string();
            t.fails("container.start", json!({ "containerId": id }))
        }
    };
    assert!(!error.message.contains("no managed container"), "a managed container reported missing: {}", error.message);
    assert_eq!(error.code.as_str(), "invalid_request", "{}", error.message);
    assert!(error.message.contains(&network), "the engine's message names the network: {}", error.message);
}

#[test]
fn docker() {
    unknown_network(&EngineRun::start(EngineName::Docker, "unknown_network"));
}

#[test]
fn podman() {
    unknown_network(&EngineRun::start(EngineName::Podman, "unknown_network"));
}
