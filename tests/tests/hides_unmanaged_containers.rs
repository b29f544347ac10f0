//! Containers the worker does not manage are invisible and untouchable through it: one
//! created directly on the engine, and one labelled as managed by another worker (same
//! tenant label, even). `container.list-all` and `container.list` never show them; start,
//! stop, remove, exec and setup answer `not_found` (by id and by name) with the same
//! message shape as for a container that does not exist, so nothing is revealed, and
//! the engine shows them untouched afterwards.

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

fn unmanaged_containers(t: &EngineRun) {
    let tenant = t.tenant("acme");
    let mine = t.create_running("mine", &tenant);
    let foreign = t.unmanaged("foreign", &[]);
    let other_worker = t.unmanaged(
        "other",
        &[("cropscode.managed", "true"), ("cropscode.worker", "w-someone-else"), ("cropscode.tenant", &tenant)],
    );

    assert_eq!(ids(&t.ok("container.list-all", json!({}))), vec![mine.clone()]);
    assert_eq!(ids(&t.ok("container.list-all", json!({ "runningOnly": true }))), vec![mine.clone()]);
    assert_eq!(ids(&t.ok("container.list", json!({ "tenant": tenant }))), vec![mine.clone()]);

    for (id, suffix) in [(&foreign, "foreign"), (&other_worker, "other")] {
        let name = t.name(suffix);
        for target in [id.as_str(), name.as_str()] {
            for (kind, extra) in [
                ("container.start", json!({})),
                ("container.stop", json!({ "graceMs": 1000 })),
                ("container.remove", json!({ "force": true })),
                ("container.exec", json!({ "command": ["true"] })),
                ("container.setup", json!({ "files": [{ "path": "/tmp/x", "content": "x" }] })),
            ] {
                for tenant_param in [None, Some(tenant.as_str())] {
                    let mut params = json!({ "containerId": target });
                    if let Some(p) = params.as_object_mut() {
                        if let Some(e) = extra.as_object() {
                            p.extend(e.clone());
                        }
                        if let Some(tn) = tenant_param {
                            p.insert("tenant".into(), tn.into());
                        }
                    }
                    t.fails_with("not_found", kind, params);
                }
            }
        }
        assert_eq!(t.state(id).as_deref(), Some("running"), "{suffix}: touched through the worker");
    }

    // Nothing tells an unmanaged container from a missing one: the answers differ only by
    // the name asked about.
    let foreign_name = t.name("foreign");
    let ghost_name = t.name("ghost");
    for kind in ["container.start", "container.stop", "container.remove"] {
        let hidden = t.fails_with("not_found", kind, json!({ "containerId": foreign_name }));
        let missing = t.fails_with("not_found", kind, json!({ "containerId": ghost_name }));
        assert_eq!(
            hidden.message.replace(&foreign_name, "<name>"),
            missing.message.replace(&ghost_name, "<name>"),
            "{kind}: an unmanaged container is answered differently from a missing one"
        );
    }

    // The worker's own container is still its own.
    t.ok("container.exec", json!({ "containerId": mine, "command": ["true"] }));
}

engine_tests!(unmanaged_containers);
