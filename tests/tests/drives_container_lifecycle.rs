//! The whole life of a container through the worker, from the local orchestrator, on
//! Docker and on Podman: `container.create` pulls the image from the local registry when
//! it is missing (with `pull` progress), then start, exec, stop and remove, each answered
//! as docs/protocol.md says and each visible on the engine itself. The container carries
//! the worker's labels (managed, which worker, which tenant) besides the caller's own.

use std::time::{SystemTime, UNIX_EPOCH};

use cropscode_tests::*;
use serde_json::{Value, json};

fn is_full_id(id: &Value) -> bool {
    id.as_str().is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn lifecycle(t: &EngineRun) {
    let image = t.engines.registry_busybox();
    // Start without the image, so that create has to pull it (the layers may stay: they
    // are shared with the local busybox).
    block_on(async {
        if let Err(e) = t.client.remove_image(&image, true).await {
            assert!(e.is_not_found(), "removing {image}: {e:?}");
        }
    });
    assert!(!block_on(t.client.image_exists(&image)).expect("image_exists"), "{image} is still present");
    t.track_image(&image);

    let tenant = t.tenant("acme");
    let name = t.name("web");
    let created = t.command(
        "container.create",
        json!({
            "image": image,
            "tenant": tenant,
            "name": name,
            "command": ["sleep", "3600"],
            "env": {"GREETING": "hello world"},
            "workingDir": "/tmp",
            "labels": {RUN_LABEL: t.run, "com.example.project": "web"},
            "resources": {"memoryBytes": 67108864, "pidsLimit": 100},
            "ports": [{"containerPort": 8080, "hostIp": "127.0.0.1"}],
        }),
    );
    let result = match created.outcome() {
        Ok(v) => v.clone(),
        Err(e) => panic!("container.create failed: {} {}", e.code, e.message),
    };
    assert!(is_full_id(&result["containerId"]), "containerId is the full id: {result}");
    let id = result["containerId"].as_str().unwrap_or_default().to_string();
    assert_eq!(result["name"], name.as_str(), "{result}");
    assert_eq!(result["image"], image.as_str(), "{result}");
    assert_eq!(result["pulled"], true, "the missing image was pulled: {result}");
    assert!(result["warnings"].is_array(), "warnings is an array: {result}");

    // Pull progress came before the result.
    assert!(!created.progress.is_empty(), "no progress while pulling {image}");
    for p in &created.progress {
        assert_eq!(p["phase"], "pull", "pull progress: {p}");
        assert!(p["message"].is_string(), "progress has a message: {p}");
    }
    assert!(block_on(t.client.image_exists(&image)).expect("image_exists"), "the pulled image is present");

    // The engine sees a created container with the worker's labels and the request's settings.
    let inspect = t.inspect(&id).expect("the engine has the container");
    assert_eq!(inspect["State"]["Status"], "created");
    let labels = &inspect["Config"]["Labels"];
    assert_eq!(labels["cropscode.managed"], "true", "{labels}");
    assert_eq!(labels["cropscode.worker"], t.worker_id.as_str(), "{labels}");
    assert_eq!(labels["cropscode.tenant"], tenant.as_str(), "{labels}");
    assert_eq!(labels["com.example.project"], "web", "{labels}");
    let env = inspect["Config"]["Env"].as_array().cloned().unwrap_or_default();
    assert!(env.iter().any(|e| e == "GREETING=hello world"), "env {env:?}");
    assert_eq!(inspect["Config"]["WorkingDir"], "/tmp");
    assert_eq!(inspect["HostConfig"]["Memory"], 67108864, "{}", inspect["HostConfig"]);
    assert_eq!(inspect["HostConfig"]["PidsLimit"], 100, "{}", inspect["HostConfig"]);

    // Listed for its tenant, created but not running.
    let listed = t.ok("container.list", json!({ "tenant": tenant }));
    let containers = listed["containers"].as_array().expect("containers array");
    assert_eq!(containers.len(), 1, "{listed}");
    let entry = &containers[0];
    assert_eq!(entry["containerId"], id.as_str());
    assert_eq!(entry["name"], name.as_str());
    assert_eq!(entry["image"], image.as_str());
    assert_eq!(entry["tenant"], tenant.as_str());
    assert_eq!(entry["state"], "created");
    assert!(entry["status"].is_string(), "{entry}");
    assert_eq!(entry["labels"]["cropscode.managed"], "true", "{entry}");
    assert_eq!(entry["labels"]["com.example.project"], "web", "{entry}");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let created_at = entry["createdAt"].as_i64().expect("createdAt");
    assert!((now - 300..=now + 5).contains(&created_at), "createdAt {created_at} vs now {now}");
    let running = t.ok("container.list", json!({ "tenant": tenant, "runningOnly": true }));
    assert_eq!(running["containers"], json!([]), "a created container is not running");

    // Stopping a container that never ran: nothing to do, no exit code.
    let stopped = t.ok("container.stop", json!({ "containerId": id }));
    assert_eq!(stopped["alreadyStopped"], true, "{stopped}");
    assert!(stopped["exitCode"].is_null(), "a container never started has no exit code: {stopped}");

    // Start (by name), then start again (by a prefix of the id): nothing to do.
    let started = t.ok("container.start", json!({ "containerId": name, "tenant": tenant }));
    assert_eq!(started["containerId"], id.as_str(), "{started}");
    assert_eq!(started["alreadyRunning"], false);
    assert_eq!(t.state(&id).as_deref(), Some("running"));
    let again = t.ok("container.start", json!({ "containerId": &id[..12] }));
    assert_eq!(again["alreadyRunning"], true, "{again}");
    assert_eq!(again["containerId"], id.as_str(), "{again}");

    // Running, with its port published on the address asked for (the engine chose the port).
    let running = t.ok("container.list", json!({ "tenant": tenant, "runningOnly": true }));
    let entry = &running["containers"][0];
    assert_eq!(entry["state"], "running", "{running}");
    let ports = entry["ports"].as_array().cloned().unwrap_or_default();
    assert_eq!(ports.len(), 1, "one published port: {entry}");
    assert_eq!(ports[0]["containerPort"], 8080, "{entry}");
    assert_eq!(ports[0]["protocol"], "tcp", "{entry}");
    assert_eq!(ports[0]["hostIp"], "127.0.0.1", "{entry}");
    assert!(ports[0]["hostPort"].as_u64().is_some_and(|p| p > 0), "{entry}");

    // Exec sees the container's environment and working directory.
    let out = t.ok(
        "container.exec",
        json!({ "containerId": id, "tenant": tenant, "command": ["sh", "-c", "echo \"$GREETING\"; pwd"] }),
    );
    assert_eq!(out["exitCode"], 0, "{out}");
    assert_eq!(out["stdout"], "hello world\n/tmp\n", "{out}");
    assert_eq!(out["stderr"], "", "{out}");
    assert_eq!(out["encoding"], "utf8", "{out}");
    assert_eq!(out["truncated"], false, "{out}");
    assert!(out["durationMs"].is_u64(), "{out}");

    // Stop: `sleep` as PID 1 ignores SIGTERM, so the grace period ends in SIGKILL.
    let stopped = t.ok("container.stop", json!({ "containerId": id, "tenant": tenant, "graceMs": 1000 }));
    assert_eq!(stopped["containerId"], id.as_str(), "{stopped}");
    assert_eq!(stopped["alreadyStopped"], false, "{stopped}");
    if let Some(code) = stopped["exitCode"].as_i64() {
        assert!(code == 137 || code == 143, "exit code of a stopped sleep: {code}");
    }
    assert_eq!(t.state(&id).as_deref(), Some("exited"));
    let again = t.ok("container.stop", json!({ "containerId": id }));
    assert_eq!(again["alreadyStopped"], true, "{again}");
    let listed = t.ok("container.list", json!({ "tenant": tenant }));
    assert_eq!(listed["containers"][0]["state"], "exited", "{listed}");

    // Remove: gone from the engine and from the lists.
    let removed = t.ok("container.remove", json!({ "containerId": name, "tenant": tenant }));
    assert_eq!(removed["containerId"], id.as_str(), "{removed}");
    assert!(t.inspect(&id).is_none(), "the engine still has {id}");
    assert_eq!(t.ok("container.list", json!({ "tenant": tenant }))["containers"], json!([]));
    assert_eq!(t.ok("container.list-all", json!({}))["containers"], json!([]));
    t.fails_with("not_found", "container.remove", json!({ "containerId": id }));

    // The image is now present: a second create does not pull.
    let second = t
        .ok("container.create", json!({ "image": image, "tenant": tenant, "command": ["true"], "labels": t.labels() }));
    assert_eq!(second["pulled"], false, "{second}");
    assert!(second["name"].as_str().is_some_and(|n| !n.is_empty()), "the engine named it: {second}");
    t.worker.assert_token_absent();
}

engine_tests!(lifecycle);
