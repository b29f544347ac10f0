//! `containersRunning` follows the engine: containers started and stopped outside the
//! worker, or exiting on their own, change the count without any command (the engine's
//! events); the machine's other containers never count; a new worker id recounts.

mod common;

use common::worker::WorkerTest;
use cropscode_engine_api::RemoveContainer;
use serde_json::json;

worker_test!(worker_counts_running, async |w: &WorkerTest| {
    let e = &w.t.engine;
    w.wait_running(0).await;
    let id = w.running(&w.acme, "counted").await;
    w.wait_running(1).await;

    // Stopped and started behind the worker's back.
    e.stop_container(&id, Some(std::time::Duration::from_secs(1))).await.unwrap();
    w.wait_running(0).await;
    e.start_container(&id).await.unwrap();
    w.wait_running(1).await;

    // One that exits by itself.
    let brief = w
        .ok("container.create", json!({"image": common::BUSYBOX, "tenant": w.globex, "command": ["sleep", "1"]}))
        .await;
    w.ok("container.start", json!({"containerId": brief["containerId"]})).await;
    w.wait_running(2).await;
    w.wait_running(1).await;

    // The machine's own containers do not count.
    w.t.running_container().await;
    smol::Timer::after(std::time::Duration::from_millis(300)).await;
    w.wait_running(1).await;

    // Removed behind the worker's back.
    e.remove_container(&id, RemoveContainer { force: true, volumes: true }).await.unwrap();
    w.wait_running(0).await;

    // A new identity counts its own containers only.
    let again = w.running(&w.acme, "again").await;
    w.wait_running(1).await;
    let me = w.worker_id.clone();
    w.worker.set_worker_id("w-nobody-has-this");
    w.wait_running(0).await;
    w.worker.set_worker_id(&me);
    w.wait_running(1).await;
    e.stop_container(&again, Some(std::time::Duration::from_secs(1))).await.unwrap();
    w.wait_running(0).await;
});
