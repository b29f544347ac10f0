//! `container.list` shows one tenant's containers, `container.list-all` every container
//! the worker manages, and a command naming a tenant cannot see or touch another
//! tenant's container: it is `not_found`, and the container is left as it was. Two
//! tenants may each have a container of the same name; naming it without a tenant is
//! then `conflict`.

use std::collections::BTreeSet;

use cropscode_tests::*;
use serde_json::{Value, json};

fn ids(listed: &Value) -> Vec<String> {
    listed["containers"]
        .as_array()
        .unwrap_or_else(|| panic!("no containers array in {listed}"))
        .iter()
        .map(|c| c["containerId"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn id_set(listed: &Value) -> BTreeSet<String> {
    ids(listed).into_iter().collect()
}

fn tenant_scoping(t: &EngineRun) {
    let a = t.tenant("a");
    let b = t.tenant("b");
    let a1 = t.create_running("a1", &a);
    let a2 = t.create("a2", &a);
    let b1 = t.create_running("b1", &b);

    // One tenant at a time, newest first.
    let listed = t.ok("container.list", json!({ "tenant": a }));
    assert_eq!(ids(&listed), vec![a2.clone(), a1.clone()], "tenant a, newest first: {listed}");
    for c in listed["containers"].as_array().into_iter().flatten() {
        assert_eq!(c["tenant"], a.as_str(), "{c}");
        assert_eq!(c["labels"]["cropscode.tenant"], a.as_str(), "{c}");
    }
    assert_eq!(ids(&t.ok("container.list", json!({ "tenant": a, "runningOnly": true }))), vec![a1.clone()]);
    assert_eq!(ids(&t.ok("container.list", json!({ "tenant": b }))), vec![b1.clone()]);
    assert!(ids(&t.ok("container.list", json!({ "tenant": t.tenant("nobody") }))).is_empty());

    // Every tenant of this worker (its id is unique to the run, so nothing else is listed).
    let all = t.ok("container.list-all", json!({}));
    assert_eq!(id_set(&all), BTreeSet::from([a1.clone(), a2.clone(), b1.clone()]), "{all}");
    let running = t.ok("container.list-all", json!({ "runningOnly": true }));
    assert_eq!(id_set(&running), BTreeSet::from([a1.clone(), b1.clone()]), "{running}");

    // Tenant a cannot touch b1, by id or by name.
    let b1_name = t.name("b1");
    for target in [&b1, &b1_name] {
        for (kind, extra) in [
            ("container.start", json!({})),
            ("container.stop", json!({ "graceMs": 1000 })),
            ("container.remove", json!({ "force": true })),
            ("container.exec", json!({ "command": ["true"] })),
            ("container.setup", json!({ "files": [{ "path": "/tmp/x", "content": "x" }] })),
        ] {
            let mut params = json!({ "containerId": target, "tenant": a });
            if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
                p.extend(e.clone());
            }
            t.fails_with("not_found", kind, params);
        }
    }
    assert_eq!(t.state(&b1).as_deref(), Some("running"), "b1 was touched by another tenant's commands");
    let probe = t.ok("container.exec", json!({ "containerId": b1, "tenant": b, "command": ["ls", "/tmp/x"] }));
    assert_ne!(probe["exitCode"], 0, "tenant a's setup wrote into b1: {probe}");

    // Its own tenant, or no tenant at all (an orchestrator-wide command), reaches it.
    t.ok("container.exec", json!({ "containerId": b1, "tenant": b, "command": ["true"] }));
    t.ok("container.exec", json!({ "containerId": b1, "command": ["true"] }));

    // Two tenants may use one name; without a tenant that name is ambiguous.
    let shared_a = t.create_running("shared", &a);
    let shared_b = t.create_running("shared", &b);
    assert_ne!(shared_a, shared_b);
    let shared = t.name("shared");
    let in_a = t.ok("container.exec", json!({ "containerId": shared, "tenant": a, "command": ["hostname"] }));
    let in_b = t.ok("container.exec", json!({ "containerId": shared, "tenant": b, "command": ["hostname"] }));
    assert_eq!(in_a["stdout"], format!("{}\n", &shared_a[..12]), "{in_a}");
    assert_eq!(in_b["stdout"], format!("{}\n", &shared_b[..12]), "{in_b}");
    t.fails_with("conflict", "container.exec", json!({ "containerId": shared, "command": ["true"] }));
    t.ok("container.remove", json!({ "containerId": shared, "tenant": a, "force": true }));
    t.ok("container.remove", json!({ "containerId": shared, "tenant": b, "force": true }));

    // Removing with the wrong tenant fails, with the right one works.
    t.fails_with("not_found", "container.remove", json!({ "containerId": a2, "tenant": b }));
    t.ok("container.remove", json!({ "containerId": a2, "tenant": a }));
    assert!(t.inspect(&a2).is_none());
    assert_eq!(ids(&t.ok("container.list", json!({ "tenant": a }))), vec![a1]);
}

engine_tests!(tenant_scoping);
