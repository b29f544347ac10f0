//! With Podman installed but no Podman socket answering, the worker starts
//! `podman system service` under its data directory, uses it, restarts it when it dies,
//! and stops it on shutdown.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cropscode_engine::worker::detect;
use cropscode_engine::{EngineOptions, EnginePreference, WorkerEngine};
use cropscode_engine_api::{Endpoint, EngineClient, EngineKind};

const PODMAN: &str = "/usr/bin/podman";

async fn answers(socket: &Path) -> bool {
    EngineClient::new(Endpoint::Unix(socket.to_owned())).ping().await.is_ok()
}

#[test]
fn starts_restarts_and_stops_a_podman_service() {
    smol::block_on(async {
        let data_dir = std::env::temp_dir().join(format!("cropscode-supervise-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let socket = data_dir.join("podman.sock");
        let found = detect(Some(PODMAN.as_ref()), None).await;
        if found.engines.iter().any(|e| e.answer.as_ref().is_ok_and(|v| v.kind == EngineKind::Podman)) {
            eprintln!("a Podman socket already answers on this machine ({found:?}): nothing to supervise");
            return;
        }

        let options = EngineOptions {
            preference: EnginePreference::Podman,
            podman_path: Some(PODMAN.into()),
            data_dir: Some(data_dir.clone()),
            worker_id: Some("w-supervise".into()),
            ..EngineOptions::default()
        };
        let worker = WorkerEngine::start(options).await;
        assert_eq!(worker.serving().await, Some((EngineKind::Podman, Endpoint::Unix(socket.clone()))));
        assert_eq!(worker.engines().first().map(String::as_str), Some("podman"), "{:?}", worker.engines());
        let pid = worker.supervised_podman_pid().expect("a supervised service");
        assert!(data_dir.join("podman-service.log").exists());
        assert_eq!(worker.refresh_running().await, Ok(0));

        // Killed: the supervisor starts it again.
        let status = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if worker.supervised_podman_pid().is_some_and(|new| new != pid) && answers(&socket).await {
                break;
            }
            assert!(Instant::now() < deadline, "the Podman service was not restarted");
            smol::Timer::after(Duration::from_millis(100)).await;
        }
        assert_eq!(worker.refresh_running().await, Ok(0), "the worker uses the restarted service");

        let pid = worker.supervised_podman_pid().unwrap();
        worker.shutdown().await;
        smol::Timer::after(Duration::from_millis(300)).await;
        assert!(!answers(&socket).await, "the service outlived the worker");
        assert!(!PathBuf::from(format!("/proc/{pid}")).exists() || zombie(pid), "pid {pid} still runs");
        let _ = std::fs::remove_dir_all(&data_dir);
    });
}

fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| stat.contains(") Z "))
}
