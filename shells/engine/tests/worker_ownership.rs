//! The worker never reveals or touches containers it does not own: a container made
//! directly on the engine (no labels, labels of another worker, `managed=false`) is
//! `not_found` through every command that targets a container, with the same message as a
//! container that does not exist, and is never listed.

mod common;

use common::worker::WorkerTest;
use cropscode_core::protocol::ErrorCode;
use cropscode_engine_api::ContainerSpec;
use serde_json::{Value, json};

/// Every command that names a container, aimed at `target`.
fn commands(target: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("container.start", json!({"containerId": target})),
        ("container.stop", json!({"containerId": target, "graceMs": 1000})),
        ("container.remove", json!({"containerId": target, "force": true})),
        ("container.exec", json!({"containerId": target, "command": ["true"]})),
        ("container.setup", json!({"containerId": target, "files": [{"path": "/tmp/x", "content": "x"}]})),
    ]
}

worker_test!(worker_ownership, async |w: &WorkerTest| {
    let e = &w.t.engine;
    // Three containers made directly, each running: no cropscode labels at all; another
    // worker's; this worker's id but not marked managed.
    let mut strangers = Vec::new();
    for (suffix, extra) in [
        ("plain", vec![]),
        ("other-worker", vec![("cropscode.managed", "true"), ("cropscode.worker", "w-someone-else")]),
        ("unmanaged", vec![("cropscode.managed", "false"), ("cropscode.worker", w.worker_id.as_str())]),
    ] {
        let mut labels = w.t.labels();
        labels.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())));
        labels.insert("cropscode.tenant".into(), w.acme.clone());
        let spec = ContainerSpec { labels, ..w.t.sleeper() };
        let name = w.t.name(suffix);
        let created = e.create_container(Some(&name), &spec).await.expect("direct create");
        e.start_container(&created.id).await.expect("direct start");
        strangers.push((created.id, name));
    }
    // And one the worker made, so the lists are not trivially empty.
    let mine = w.running(&w.acme, "mine").await;

    for (id, name) in &strangers {
        for target in [id.as_str(), &id[..12], name.as_str()] {
            for (command, params) in commands(target) {
                let error = w.fails(command, params.clone(), ErrorCode::NotFound).await;
                assert_eq!(error.message, format!("no managed container `{target}`"), "{command} {params}");
            }
            // Naming the tenant changes nothing.
            let error =
                w.fails("container.start", json!({"containerId": target, "tenant": w.acme}), ErrorCode::NotFound).await;
            assert_eq!(error.message, format!("no managed container `{target}`"));
        }
        // Untouched: still running, still there.
        let inspect = e.inspect_container(id).await.expect("still there");
        assert!(inspect.state.running, "{name} was stopped");
    }
    // A container that does not exist gets exactly the same answer.
    for (command, params) in commands("no-such-container") {
        let error = w.fails(command, params, ErrorCode::NotFound).await;
        assert_eq!(error.message, "no managed container `no-such-container`");
    }

    let ids = |listed: Value| -> Vec<String> {
        listed["containers"].as_array().unwrap().iter().map(|c| c["containerId"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(ids(w.ok("container.list-all", json!({})).await), std::slice::from_ref(&mine));
    assert_eq!(ids(w.ok("container.list", json!({"tenant": w.acme})).await), std::slice::from_ref(&mine));
    assert_eq!(ids(w.ok("container.list-all", json!({"runningOnly": true})).await), [mine]);
    // The running count is this worker's only.
    assert_eq!(w.worker.refresh_running().await.unwrap(), 1);
});
