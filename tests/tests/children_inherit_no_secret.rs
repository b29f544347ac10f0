//! No child of the worker inherits a secret: the supervised `podman system service` the
//! worker starts (Podman installed, no Podman socket answering) has no `WORKER_TOKEN` in
//! its environment, read from `/proc/PID/environ` like any user of the machine could.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::time::{Duration, Instant};

use cropscode_tests::*;

/// The pids whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // `pid (comm) state ppid …`; comm may hold spaces, so split after the last ')'.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn the_supervised_podman_service_has_no_token_in_its_environment() {
    assert!(Path::new("/usr/bin/podman").exists(), "Podman is installed by tests/env/prepare.sh");
    let orchestrator = start_orchestrator();
    let secret = TEST_TOKEN;
    let worker = WorkerSpec::new(orchestrator.ws_url())
        .env("CONTAINER_ENGINE", "podman")
        .env("PODMAN_PATH", "/usr/bin/podman")
        // No engine socket from the environment: the worker supervises its own service.
        .env("CONTAINER_HOST", "")
        .env("DOCKER_HOST", "")
        .spawn();
    let pid = worker.pid().expect("the worker runs");
    let socket = worker.home().join("data/podman.sock");
    let deadline = Instant::now() + Duration::from_secs(60);
    let service = loop {
        let podman = children(pid).into_iter().find(|child| {
            std::fs::read(format!("/proc/{child}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg.ends_with(b"podman")))
        });
        if let Some(child) = podman.filter(|_| socket.exists()) {
            break child;
        }
        assert!(
            Instant::now() < deadline,
            "no supervised podman service (a Podman socket may already answer here):\n{}\n{}",
            worker.logs(),
            std::fs::read_to_string(worker.home().join("data/podman-service.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let environ = std::fs::read(format!("/proc/{service}/environ")).expect("the child's environment");
    assert!(!environ.is_empty(), "the child's environment was read");
    assert!(environ.split(|b| *b == 0).any(|var| var.starts_with(b"PATH=")), "it is the real environment");
    assert!(!environ.windows(secret.len()).any(|w| w == secret.as_bytes()), "the token reached the child");
    assert!(!environ.split(|b| *b == 0).any(|var| var.starts_with(b"WORKER_TOKEN=")), "WORKER_TOKEN reached the child");
    assert!(wait_registered(&orchestrator, None, Duration::from_secs(30)).is_some(), "the worker still registers");
    worker.assert_token_absent();
}
