//! Tenants on one worker: the same container name for two tenants does not collide;
//! `container.list` shows one tenant, `container.list-all` every tenant; a command naming
//! a tenant cannot reach another tenant's container.

mod common;

use common::worker::WorkerTest;
use cropscode_core::protocol::ErrorCode;
use serde_json::{Value, json};

fn ids(listed: &Value) -> Vec<&str> {
    listed["containers"].as_array().unwrap().iter().map(|c| c["containerId"].as_str().unwrap()).collect()
}

worker_test!(worker_tenants, async |w: &WorkerTest| {
    let acme = w.running(&w.acme, "dev").await;
    let globex = w.running(&w.globex, "dev").await;
    assert_ne!(acme, globex);
    // Created later, stopped: still listed unless runningOnly.
    let idle = w.ok("container.create", json!({"image": common::BUSYBOX, "tenant": w.acme, "name": "idle"})).await;
    let idle = idle["containerId"].as_str().unwrap().to_owned();

    let listed = w.ok("container.list", json!({"tenant": w.acme})).await;
    assert_eq!(ids(&listed), [idle.as_str(), acme.as_str()], "newest first: {listed}");
    for row in listed["containers"].as_array().unwrap() {
        assert_eq!(row["tenant"].as_str(), Some(w.acme.as_str()));
        assert_eq!(row["labels"]["cropscode.tenant"].as_str(), Some(w.acme.as_str()));
    }
    let running = w.ok("container.list", json!({"tenant": w.acme, "runningOnly": true})).await;
    assert_eq!(ids(&running), [acme.as_str()]);
    assert_eq!(ids(&w.ok("container.list", json!({"tenant": w.globex})).await), [globex.as_str()]);
    assert!(ids(&w.ok("container.list", json!({"tenant": "nobody"})).await).is_empty());
    let mut all = ids(&w.ok("container.list-all", json!({})).await).into_iter().map(String::from).collect::<Vec<_>>();
    all.sort();
    let mut expected = vec![acme.clone(), globex.clone(), idle.clone()];
    expected.sort();
    assert_eq!(all, expected);

    // The tenant picks its own `dev`.
    let stopped = w.ok("container.stop", json!({"containerId": "dev", "tenant": w.globex, "graceMs": 1000})).await;
    assert_eq!(stopped["containerId"].as_str(), Some(globex.as_str()));
    // Without a tenant, `dev` is ambiguous; by id it is not.
    let ambiguous = w.fails("container.start", json!({"containerId": "dev"}), ErrorCode::Conflict).await;
    assert!(ambiguous.message.contains("tenant"), "{ambiguous:?}");
    w.ok("container.start", json!({"containerId": globex})).await;

    // Another tenant's container, by id or name, is not found; the same message as a missing one.
    for target in [acme.as_str(), "idle"] {
        for (command, params) in [
            ("container.stop", json!({"containerId": target, "tenant": w.globex})),
            ("container.remove", json!({"containerId": target, "tenant": w.globex, "force": true})),
            ("container.exec", json!({"containerId": target, "tenant": w.globex, "command": ["true"]})),
        ] {
            let error = w.fails(command, params, ErrorCode::NotFound).await;
            assert_eq!(error.message, format!("no managed container `{target}`"));
        }
    }
    assert!(w.t.engine.inspect_container(&acme).await.unwrap().state.running);
    w.wait_running(2).await;
});
