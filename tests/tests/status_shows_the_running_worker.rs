//! `cropscode status` asks the running worker (through `DATA_DIR/worker.sock`, mode 0600)
//! for its live state: it shows the worker connected, with its id; once the worker
//! stops, it says none runs.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use cropscode_tests::*;

fn status(home: &std::path::Path) -> String {
    let out = Command::new(cropscode_bin())
        .args(["status", "--offline"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("DATA_DIR", home.join("data"))
        .env("PODMAN_PATH", "/nonexistent/podman")
        .output()
        .expect("run cropscode status");
    assert!(out.status.success(), "status failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn status_shows_connected_worker_then_none() {
    let orchestrator = start_orchestrator();
    let mut worker = WorkerSpec::new(orchestrator.ws_url()).spawn();
    let registered = wait_registered(&orchestrator, None, Duration::from_secs(30)).expect("registered");
    let home = worker.home().to_path_buf();
    let socket = home.join("data/worker.sock");
    let mode = std::fs::metadata(&socket).expect("worker.sock exists").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "worker.sock is owner-only");

    let shown = status(&home);
    let live = shown.lines().skip_while(|l| !l.starts_with("Running worker:")).collect::<Vec<_>>().join("\n");
    assert!(live.contains("registered (connected"), "{shown}");
    assert!(live.contains(&registered.worker_id), "{shown}");
    assert!(live.contains("loop") && live.contains("turning"), "{shown}");

    worker.stop().expect("the worker stops");
    assert!(!socket.exists(), "worker.sock is removed on shutdown");
    let shown = status(&home);
    assert!(shown.contains("Running worker:       none running"), "{shown}");
}
