//! The container lifecycle through the worker engine: create (labelled, namespaced name),
//! start, stop with a grace period, remove, on both engines; the running count follows.

mod common;

use common::worker::WorkerTest;
use cropscode_core::protocol::ErrorCode;
use cropscode_engine::worker::engine_name;
use serde_json::json;

worker_test!(worker_lifecycle, async |w: &WorkerTest| {
    let e = &w.t.engine;
    let created = w
        .ok(
            "container.create",
            json!({
                "image": common::BUSYBOX, "tenant": w.acme, "name": "dev",
                "command": ["sleep", "300"], "env": {"GREETING": "hi"}, "workingDir": "/tmp",
                "labels": {"com.example.team": "web"}, "hostname": "devbox",
                "resources": {"memoryBytes": 67108864, "pidsLimit": 64}
            }),
        )
        .await;
    let id = created["containerId"].as_str().unwrap().to_owned();
    assert_eq!(created["name"], "dev", "{created}");
    assert_eq!(created["image"], common::BUSYBOX);
    assert_eq!(created["pulled"], false);

    // What the engine sees: the namespaced name and the worker's labels.
    let inspect = e.inspect_container(&id).await.expect("inspect");
    assert_eq!(inspect.name.trim_start_matches('/'), engine_name(&w.acme, "dev"));
    let labels = &inspect.config.labels;
    assert_eq!(labels.get("cropscode.managed").map(String::as_str), Some("true"));
    assert_eq!(labels.get("cropscode.worker"), Some(&w.worker_id));
    assert_eq!(labels.get("cropscode.tenant"), Some(&w.acme));
    assert_eq!(labels.get("cropscode.name").map(String::as_str), Some("dev"));
    assert_eq!(labels.get("com.example.team").map(String::as_str), Some("web"));
    assert!(inspect.config.env.contains(&"GREETING=hi".to_owned()));
    assert_eq!((inspect.config.working_dir.as_str(), inspect.state.status.as_str()), ("/tmp", "created"));

    // Start by the orchestrator's name and tenant; again: already running.
    let started = w.ok("container.start", json!({"containerId": "dev", "tenant": w.acme})).await;
    assert_eq!(started, json!({"containerId": id, "alreadyRunning": false}));
    w.wait_running(1).await;
    let again = w.ok("container.start", json!({"containerId": "dev"})).await;
    assert_eq!(again["alreadyRunning"], true);

    let listed = w.ok("container.list", json!({"tenant": w.acme, "runningOnly": true})).await;
    let row = &listed["containers"][0];
    assert_eq!((row["containerId"].as_str(), row["name"].as_str()), (Some(id.as_str()), Some("dev")), "{listed}");
    assert_eq!((row["state"].as_str(), row["tenant"].as_str()), (Some("running"), Some(w.acme.as_str())));
    assert!(row["image"].as_str().unwrap().ends_with(common::BUSYBOX), "{row}");

    // A running container is not removed without `force`.
    w.fails("container.remove", json!({"containerId": id}), ErrorCode::Conflict).await;

    // sleep ignores SIGTERM as PID 1: the grace period ends in SIGKILL (137).
    let stopped = w.ok("container.stop", json!({"containerId": id, "tenant": w.acme, "graceMs": 1000})).await;
    assert_eq!((stopped["alreadyStopped"].as_bool(), stopped["exitCode"].as_i64()), (Some(false), Some(137)));
    w.wait_running(0).await;
    let again = w.ok("container.stop", json!({"containerId": id})).await;
    assert_eq!(again["alreadyStopped"], true, "{again}");

    let removed = w.ok("container.remove", json!({"containerId": "dev", "tenant": w.acme})).await;
    assert_eq!(removed, json!({"containerId": id}));
    let gone = w.fails("container.remove", json!({"containerId": id}), ErrorCode::NotFound).await;
    assert_eq!(gone.message, format!("no managed container `{id}`"));

    // Unnamed: the engine's generated name is reported and addresses the container.
    let unnamed = w.ok("container.create", json!({"image": common::BUSYBOX, "tenant": w.acme})).await;
    let name = unnamed["name"].as_str().unwrap().to_owned();
    assert!(!name.is_empty() && !name.starts_with('/'), "{unnamed}");
    let started = w.ok("container.start", json!({"containerId": name, "tenant": w.acme})).await;
    assert_eq!(started["containerId"], unnamed["containerId"]);
    // Forced removal of a running container.
    w.ok("container.remove", json!({"containerId": name, "force": true, "removeVolumes": true})).await;
    w.wait_running(0).await;

    // The same name again for the same tenant is a conflict, with the engine's message.
    w.ok("container.create", json!({"image": common::BUSYBOX, "tenant": w.acme, "name": "twice"})).await;
    let conflict = w
        .fails(
            "container.create",
            json!({"image": common::BUSYBOX, "tenant": w.acme, "name": "twice"}),
            ErrorCode::Conflict,
        )
        .await;
    assert!(conflict.message.contains("twice"), "{conflict:?}");
});
