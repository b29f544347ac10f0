//! A hostile orchestrator cannot get past the machine owner's security floor.
//!
//! Against the real worker and both real engines: privileged containers and
//! execs, host namespaces, engine-socket mounts (read-only too), `SYS_ADMIN`,
//! unconfined seccomp, `kernel.*` sysctls, devices, host paths, root under
//! `restricted`, oversized frames, deeply nested JSON, invalid names and paths,
//! a remote attempt to change the floor and another tenant's container are each
//! refused with the right code, appear in the audit log (with the control, for
//! floor refusals), and leave the worker healthy: a normal command succeeds on
//! the same connection afterwards. Under `restricted`, what the worker creates
//! really has the forced settings (the engine's inspect and the kernel's view
//! from inside the container agree).

use std::path::PathBuf;
use std::time::Duration;

use cropscode_tests::orchestrator::Event;
use cropscode_tests::*;
use serde_json::{Value, json};

/// The audit log of the run's worker, one JSON value per line.
fn audit(t: &EngineRun) -> Vec<Value> {
    let path = audit_path(t);
    // The worker may be appending a record while this reads: an unterminated last line
    // is not written yet.
    std::fs::read_to_string(&path)
        .unwrap_or_default()
        .split_inclusive('\n')
        .filter_map(|line| line.strip_suffix('\n'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("audit line {line:?}: {e}")))
        .collect()
}

fn audit_path(t: &EngineRun) -> PathBuf {
    t.worker.home().join("data").join("audit").join("audit.jsonl")
}

/// The audit record of command `id` (it is written right after the result is sent).
fn audited(t: &EngineRun, id: &str) -> Value {
    for _ in 0..100 {
        if let Some(line) = audit(t).into_iter().find(|l| l["id"] == id) {
            return line;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no audit record for {id} in {}:\n{:#?}", audit_path(t).display(), audit(t));
}

/// Sends `kind` (which must be refused `forbidden` naming `control`), and checks the audit record.
fn refused(t: &EngineRun, control: &str, kind: &str, params: Value) {
    let sent = params.to_string();
    let answer = t.command(kind, params);
    let error = match answer.outcome() {
        Ok(v) => panic!("{kind} {sent} succeeded with {v}: the floor let it through"),
        Err(e) => e.clone(),
    };
    assert_eq!(error.code.as_str(), "forbidden", "{kind} {sent}: {}", error.message);
    assert!(
        error.message.contains(&format!("control `{control}`")),
        "{kind} {sent}: the message names the control `{control}`: {}",
        error.message
    );
    let line = audited(t, &answer.id);
    assert_eq!(line["command"], kind, "{line}");
    assert_eq!(line["outcome"], "forbidden", "{line}");
    assert_eq!(line["control"], control, "{line}");
}

/// Sends `kind` and expects `code` (not a floor refusal); checks the audit record.
fn fails(t: &EngineRun, code: &str, kind: &str, params: Value) {
    let sent = params.to_string();
    let answer = t.command(kind, params);
    match answer.outcome() {
        Ok(v) => panic!("{kind} {sent} succeeded with {v}, expected {code}"),
        Err(e) => assert_eq!(e.code.as_str(), code, "{kind} {sent}: {}", e.message),
    }
    let line = audited(t, &answer.id);
    assert_eq!(line["outcome"], code, "{line}");
    assert!(line.get("control").is_none(), "only floor refusals name a control: {line}");
}

fn create(t: &EngineRun, tenant: &str, extra: Value) -> Value {
    let mut params = json!({
        "image": BUSYBOX,
        "tenant": tenant,
        "command": ["sleep", "3600"],
        "labels": t.labels(),
        "pull": "never",
    });
    if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    params
}

/// Sends a raw text frame and waits for the `result` of `id`.
fn raw_result(t: &EngineRun, id: &str, text: String) -> Value {
    let seen = t.orchestrator.events().len();
    block_on(t.orchestrator.send_text(&t.worker_id, text)).expect("send a raw frame");
    for _ in 0..400 {
        let found = t.orchestrator.events().into_iter().skip(seen.saturating_sub(1)).find_map(|e| match e.event {
            Event::Frame { text, .. } => {
                serde_json::from_str::<Value>(&text).ok().filter(|v| v["type"] == "result" && v["id"] == id)
            }
            _ => None,
        });
        if let Some(found) = found {
            return found;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("no result for the raw frame {id}");
}

/// The worker still answers a normal command, on the connection it registered on.
fn still_healthy(t: &EngineRun, tenant: &str) {
    let listed = t.ok("container.list", json!({ "tenant": tenant }));
    assert!(listed["containers"].is_array(), "{listed}");
    let registrations = t
        .orchestrator
        .events()
        .into_iter()
        .filter(|e| matches!(&e.event, Event::Registered { worker_id, .. } if *worker_id == t.worker_id))
        .count();
    assert_eq!(registrations, 1, "the worker never dropped its connection");
    assert!(t.worker.logs().contains("security floor"), "the worker logs its floor");
}

fn baseline(t: &EngineRun) {
    let tenant = t.tenant("acme");
    let sock = t.engines.socket(t.which).display().to_string();

    // The container.create controls of the floor.
    let cases: Vec<(&str, Value)> = vec![
        ("privileged", json!({ "privileged": true })),
        ("hostNetwork", json!({ "networkMode": "host" })),
        ("hostPID", json!({ "pidMode": "host" })),
        ("hostIPC", json!({ "ipcMode": "host" })),
        ("hostUTS", json!({ "utsMode": "host" })),
        ("engineSocket", json!({ "mounts": [{"type": "bind", "source": sock, "target": "/var/run/docker.sock"}] })),
        (
            "engineSocket",
            json!({ "mounts": [{"type": "bind", "source": "/var/run/docker.sock", "target": "/s", "readOnly": true}] }),
        ),
        ("engineSocket", json!({ "mounts": [{"type": "bind", "source": "/run", "target": "/h", "readOnly": true}] })),
        ("hostPath", json!({ "mounts": [{"type": "bind", "source": "/etc", "target": "/h", "readOnly": true}] })),
        ("capabilities", json!({ "capAdd": ["SYS_ADMIN"] })),
        ("capabilities", json!({ "capAdd": ["NET_RAW"] })),
        ("seccomp", json!({ "securityOpt": ["seccomp=unconfined"] })),
        ("apparmor", json!({ "securityOpt": ["apparmor=unconfined"] })),
        ("procMount", json!({ "securityOpt": ["systempaths=unconfined"] })),
        ("sysctls", json!({ "sysctls": {"kernel.msgmax": "65536"} })),
        ("devices", json!({ "devices": [{"hostPath": "/dev/mem"}] })),
        ("hostPorts", json!({ "ports": [{"containerPort": 80, "hostPort": 80}] })),
    ];
    for (control, extra) in cases {
        refused(t, control, "container.create", create(t, &tenant, extra));
    }
    // Nothing was created by any of them.
    let listed = t.ok("container.list", json!({ "tenant": tenant }));
    assert_eq!(listed["containers"], json!([]), "refused requests create nothing: {listed}");

    // A remote attempt to lower the floor: the field is ignored, the request still refused …
    let mut sneaky = create(t, &tenant, json!({ "privileged": true }));
    sneaky["securityFloor"] = json!("none");
    sneaky["SECURITY_FLOOR"] = json!("none");
    refused(t, "privileged", "container.create", sneaky);
    // … and there is no command to change it.
    let answer = raw_result(
        t,
        "floor-1",
        json!({"type": "worker.configure", "id": "floor-1", "params": {"securityFloor": "none"}}).to_string(),
    );
    assert_eq!(answer["error"]["code"], "unknown_command", "{answer}");
    assert_eq!(audited(t, "floor-1")["outcome"], "unknown_command");
    refused(t, "privileged", "container.create", create(t, &tenant, json!({ "privileged": true })));

    // Exec paths: a privileged exec in a real, running container of the tenant.
    let id = t.create_running("hostile", &tenant);
    refused(t, "privileged", "container.exec", json!({ "containerId": id, "command": ["id"], "privileged": true }));
    let out = t.ok("container.exec", json!({ "containerId": id, "tenant": tenant, "command": ["id", "-u"] }));
    assert_eq!(out["stdout"], "0\n", "baseline allows the image's root user: {out}");

    // Builds may not use the host's network.
    refused(
        t,
        "hostNetwork",
        "image.build",
        json!({ "tag": t.image_tag("hostile"), "dockerfile": "FROM busybox\n", "networkMode": "host" }),
    );
    refused(
        t,
        "hostNetwork",
        "image.build",
        json!({ "tag": t.image_tag("hostile"), "dockerfile": "FROM busybox\nRUN --network=host true\n" }),
    );

    // Another tenant's container: invisible and untouchable.
    let other = t.tenant("other");
    for (kind, params) in [
        ("container.exec", json!({ "containerId": id, "tenant": other, "command": ["true"] })),
        ("container.stop", json!({ "containerId": id, "tenant": other })),
        ("container.remove", json!({ "containerId": id, "tenant": other, "force": true })),
        (
            "container.setup",
            json!({ "containerId": id, "tenant": other, "files": [{"path": "/tmp/x", "content": "x"}] }),
        ),
    ] {
        let error = t.fails_with("not_found", kind, params);
        assert!(!error.message.contains(&tenant), "the owner is not revealed: {}", error.message);
    }
    assert_eq!(t.ok("container.list", json!({ "tenant": other }))["containers"], json!([]));
    assert_eq!(t.state(&id).as_deref(), Some("running"), "the other tenant's commands did nothing");

    // Invalid names and paths never reach the engine.
    for (kind, params) in [
        ("container.create", create(t, &tenant, json!({ "name": "../escape" }))),
        ("container.create", create(t, &tenant, json!({ "image": "busybox/../../etc" }))),
        ("container.create", create(t, &tenant, json!({ "workingDir": "relative/dir" }))),
        (
            "container.create",
            create(t, &tenant, json!({ "mounts": [{"type": "bind", "source": "/srv/../etc", "target": "/x"}] })),
        ),
        (
            "container.create",
            create(t, &tenant, json!({ "mounts": [{"type": "volume", "source": "v", "target": "x"}] })),
        ),
        ("container.create", create(t, &tenant, json!({ "env": {"BAD=NAME": "x"} }))),
        ("container.exec", json!({ "containerId": "../../containers/x", "command": ["true"] })),
        ("container.setup", json!({ "containerId": id, "files": [{"path": "/tmp/../../etc/passwd", "content": "x"}] })),
        ("container.setup", json!({ "containerId": id, "repo": {"url": "ext::sh -c touch% /tmp/pwned"} })),
        ("image.delete", json!({ "image": "a/../../b" })),
    ] {
        fails(t, "invalid_request", kind, params);
    }

    // Oversized and deeply nested frames: answered for their id, audited, the connection stays.
    let big = format!(r#"{{"type":"container.list","id":"big-1","params":{{"pad":"{}"}}}}"#, "x".repeat(2 << 20));
    assert_eq!(raw_result(t, "big-1", big)["error"]["code"], "frame_too_large");
    assert_eq!(audited(t, "big-1")["outcome"], "frame_too_large");
    let deep =
        format!(r#"{{"type":"container.list","id":"deep-1","params":{{"x":{}{}}}}}"#, "[".repeat(200), "]".repeat(200));
    assert_eq!(raw_result(t, "deep-1", deep)["error"]["code"], "invalid_request");
    assert_eq!(audited(t, "deep-1")["outcome"], "invalid_request");

    // Every record is one line of JSON with the documented fields, and none holds a param.
    let lines = audit(t);
    assert!(lines.len() >= 30, "{} records", lines.len());
    for line in &lines {
        for key in ["time", "id", "command", "tenant", "target", "outcome"] {
            assert!(line.get(key).is_some(), "`{key}` in {line}");
        }
        assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z') && t.len() == 24), "{line}");
    }
    let text = std::fs::read_to_string(audit_path(t)).unwrap();
    assert!(!text.contains("sleep") && !text.contains("xxxxxxxx"), "no params in the audit log");

    // `cropscode audit` shows the log.
    let shown = std::process::Command::new(cropscode_bin())
        .args(["audit", "--data-dir", t.worker.home().join("data").to_str().unwrap(), "--since", "1h"])
        .env("HOME", t.worker.home())
        .output()
        .expect("run cropscode audit");
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains(r#""control":"engineSocket""#), "{shown}");
    assert_eq!(shown.lines().count(), audit(t).len());

    still_healthy(t, &tenant);
}

mod baseline_floor {
    use super::*;
    engine_tests!(baseline);
}

/// Under `restricted`: root is refused, and what is created has the forced settings.
fn restricted(t: &EngineRun) {
    let tenant = t.tenant("acme");
    assert!(t.worker.logs().contains("restricted"), "the worker logs its floor");

    refused(t, "runAsRoot", "container.create", create(t, &tenant, json!({ "user": "root" })));
    refused(t, "runAsRoot", "container.create", create(t, &tenant, json!({ "user": "0:0" })));
    // The image has no USER: it would run as root.
    refused(t, "runAsRoot", "container.create", create(t, &tenant, json!({})));
    refused(t, "capabilities", "container.create", create(t, &tenant, json!({ "user": "1000", "capAdd": ["CHOWN"] })));
    refused(
        t,
        "hostPath",
        "container.create",
        create(t, &tenant, json!({ "user": "1000", "mounts": [{"type": "bind", "source": "/tmp", "target": "/t"}] })),
    );
    refused(
        t,
        "allowPrivilegeEscalation",
        "container.create",
        create(t, &tenant, json!({ "user": "1000", "securityOpt": ["no-new-privileges=false"] })),
    );

    // Accepted: created with the forced settings.
    let volume = format!("home-{}", t.run);
    let created = t.ok(
        "container.create",
        create(
            t,
            &tenant,
            json!({
                "name": t.name("locked"),
                "user": "1000",
                "capAdd": ["NET_BIND_SERVICE"],
                "mounts": [{"type": "volume", "source": volume, "target": "/home/user/data"}],
            }),
        ),
    );
    let id = created["containerId"].as_str().expect("containerId").to_string();
    let scoped = format!("cs-{tenant}.{volume}");
    let inspect = t.inspect(&id).expect("inspect");
    let host = &inspect["HostConfig"];
    let cap_drop: Vec<String> = host["CapDrop"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str())
        .map(|c| c.trim_start_matches("CAP_").to_string())
        .collect();
    assert!(
        cap_drop.iter().any(|c| c == "ALL") || cap_drop.len() >= 13,
        "{}: every capability dropped, got CapDrop {cap_drop:?}",
        t.which.as_str()
    );
    let security_opt = host["SecurityOpt"].to_string();
    assert!(security_opt.contains("no-new-privileges"), "{}: SecurityOpt {security_opt}", t.which.as_str());
    assert!(host["PidsLimit"].as_i64().is_some_and(|p| p > 0), "{}: PidsLimit {}", t.which.as_str(), host["PidsLimit"]);
    assert!(host["Memory"].as_i64().is_some_and(|m| m > 0), "{}: Memory {}", t.which.as_str(), host["Memory"]);
    let mounts = inspect["Mounts"].to_string();
    assert!(mounts.contains(&scoped), "{}: the volume is the tenant's ({scoped}): {mounts}", t.which.as_str());

    // The kernel agrees, from inside the container.
    t.ok("container.start", json!({ "containerId": id, "tenant": tenant }));
    let status = t.ok("container.exec", json!({ "containerId": id, "command": ["cat", "/proc/self/status"] }));
    let status = status["stdout"].as_str().unwrap_or_default().to_string();
    let field =
        |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or_default().to_string();
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    // Nothing but the NET_BIND_SERVICE asked for (bit 10) is left, even in the bounding set
    // (Podman also raises an added capability for a non-root user; Docker leaves it bounding only).
    for set in ["CapEff:", "CapBnd:", "CapPrm:"] {
        let bits = u64::from_str_radix(&field(set), 16).unwrap_or(u64::MAX);
        assert_eq!(bits & !(1 << 10), 0, "{set} {bits:x}:\n{status}");
    }
    assert_eq!(field("Uid:").split_whitespace().next(), Some("1000"), "{status}");

    // Execs: root refused, the container's own (non-root) user fine.
    refused(t, "runAsRoot", "container.exec", json!({ "containerId": id, "command": ["id"], "user": "0" }));
    refused(t, "runAsRoot", "container.exec", json!({ "containerId": id, "command": ["id"], "user": "root" }));
    let out = t.ok("container.exec", json!({ "containerId": id, "command": ["id", "-u"] }));
    assert_eq!(out["stdout"], "1000\n", "{out}");

    // Setup may not plant setuid files.
    refused(
        t,
        "allowPrivilegeEscalation",
        "container.setup",
        json!({ "containerId": id, "files": [{"path": "/tmp/su", "content": "x", "mode": 2541}] }),
    );

    t.ok("container.remove", json!({ "containerId": id, "tenant": tenant, "force": true }));
    let _ = block_on(t.client.remove_volume(&scoped, true));
    still_healthy(t, &tenant);
}

mod restricted_floor {
    use super::*;
    engine_tests!(restricted, |spec| spec.env("SECURITY_FLOOR", "restricted"));
}
