//! Engine failures reach the orchestrator as the protocol's error codes: a missing image
//! (`pull: never`, or absent from the registry) and an unknown container are `not_found`;
//! a name in use and removing a running container without `force` are `conflict`; the worker's reserved labels cannot be
//! overridden (`invalid_request`). A refused command changes nothing on the engine.

use cropscode_tests::*;
use serde_json::json;

fn engine_errors(t: &EngineRun) {
    let tenant = t.tenant("acme");

    // Missing images.
    let missing_local = "cropscode-test/no-such-image:1";
    let e = t.fails_with(
        "not_found",
        "container.create",
        json!({ "image": missing_local, "tenant": tenant, "pull": "never", "labels": t.labels() }),
    );
    assert!(!e.message.is_empty());
    let missing_remote = format!("{}/cropscode-test/no-such-image:1", t.engines.registry);
    t.fails_with(
        "not_found",
        "container.create",
        json!({ "image": missing_remote, "tenant": tenant, "labels": t.labels() }),
    );
    let check = t.ok("image.check", json!({ "image": missing_local }));
    assert_eq!(check["exists"], false, "a missing image is not an error for image.check: {check}");
    t.fails_with("not_found", "image.delete", json!({ "image": missing_local }));

    // Unknown containers, by name and by a well-formed id.
    let ghost_id = "0".repeat(64);
    for target in [t.name("ghost"), ghost_id] {
        for (kind, extra) in [
            ("container.start", json!({})),
            ("container.stop", json!({})),
            ("container.remove", json!({ "force": true })),
            ("container.exec", json!({ "command": ["true"] })),
            ("container.setup", json!({ "files": [{ "path": "/tmp/x", "content": "x" }] })),
        ] {
            let mut params = json!({ "containerId": target });
            if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
                p.extend(e.clone());
            }
            t.fails_with("not_found", kind, params);
        }
    }

    // A name in use.
    let first = t.create_running("taken", &tenant);
    let conflict = t.fails_with(
        "conflict",
        "container.create",
        json!({ "image": BUSYBOX, "tenant": tenant, "name": t.name("taken"), "labels": t.labels() }),
    );
    assert!(!conflict.message.is_empty());
    assert_eq!(t.state(&first).as_deref(), Some("running"), "the conflict disturbed the existing container");

    // Removing a running container takes `force`.
    t.fails_with("conflict", "container.remove", json!({ "containerId": first }));
    assert_eq!(t.state(&first).as_deref(), Some("running"));
    t.ok("container.remove", json!({ "containerId": first, "force": true }));
    assert!(t.inspect(&first).is_none());

    // The worker's own labels are reserved: a caller cannot forge or override them.
    for (key, value) in [("cropscode.managed", "false"), ("cropscode.worker", "w-other"), ("cropscode.tenant", "x")] {
        let e = t.fails_with(
            "invalid_request",
            "container.create",
            json!({ "image": BUSYBOX, "tenant": tenant, "name": t.name("forged"), "labels": { key: value } }),
        );
        assert!(e.message.contains("labels"), "the message names the field: {}", e.message);
    }
    assert_eq!(t.ok("container.list-all", json!({}))["containers"], json!([]));
}

engine_tests!(engine_errors);
