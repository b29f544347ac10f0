//! The machine's owner widens `baseline` locally: `ALLOWED_BIND_ROOTS` lets bind mounts
//! from under those directories through (and only those), `HOST_PORT_RANGE` sets which
//! host ports may be published. Checked end to end on both engines: the mounted file is
//! readable in the container, a path outside the roots stays `forbidden`.

use cropscode_tests::*;
use serde_json::json;

fn configured_roots(t: &EngineRun) {
    let tenant = t.tenant("acme");
    let root = std::env::temp_dir().join(format!("cropscode-bind-root-{}", t.name("r")));
    std::fs::create_dir_all(root.join("shared")).expect("create the allowed root");
    std::fs::write(root.join("shared/hello.txt"), "from the host\n").expect("write the host file");
    let create = |source: String, host_port: u16| {
        json!({
            "image": BUSYBOX,
            "tenant": tenant,
            "name": t.name(&format!("bind{host_port}")),
            "command": ["sleep", "3600"],
            "labels": t.labels(),
            "pull": "never",
            "mounts": [{ "type": "bind", "source": source, "target": "/data", "readOnly": true }],
            "ports": [{ "containerPort": 80, "hostPort": host_port }],
        })
    };

    // Under the root and inside the port range: created, and the file is there.
    let inside = root.join("shared").to_string_lossy().into_owned();
    let created = t.ok("container.create", create(inside.clone(), free_port_in(18_000..18_999)));
    let id = created["containerId"].as_str().expect("containerId").to_string();
    t.ok("container.start", json!({ "containerId": id, "tenant": tenant }));
    let read =
        t.ok("container.exec", json!({ "containerId": id, "tenant": tenant, "command": ["cat", "/data/hello.txt"] }));
    assert_eq!(read["stdout"], "from the host\n", "{read}");

    // Outside the root, or outside the port range: refused, naming the control.
    let outside = t.fails_with("forbidden", "container.create", create("/etc".into(), 18_082));
    assert!(outside.message.contains("hostPath"), "{}", outside.message);
    let low_port = t.fails_with("forbidden", "container.create", create(inside, 17_000));
    assert!(low_port.message.contains("hostPorts"), "{}", low_port.message);
    let _ = std::fs::remove_dir_all(&root);
}

/// A host port in `range` that nothing listens on now, and that no other run of this
/// process was given (the two engines' runs are parallel).
fn free_port_in(range: std::ops::Range<u16>) -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let span = range.end - range.start;
    let base = (std::process::id() % u32::from(span)) as u16;
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(n < span, "no free port in {range:?}");
        let port = range.start + (base + n) % span;
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}

engine_tests!(configured_roots, |spec| {
    spec.env("ALLOWED_BIND_ROOTS", std::env::temp_dir().to_string_lossy()).env("HOST_PORT_RANGE", "18000-18999")
});
