//! The engine goes away mid-way and comes back (a proxy in front of the real socket is
//! stopped and restarted): commands answer `engine_unavailable` meanwhile, work again
//! afterwards without a new worker, the running count follows events again, and each
//! transition is logged once, not once per call.

mod common;

use common::proxy::EngineProxy;
use common::worker::WorkerTest;
use common::{Which, socket};
use cropscode_core::protocol::ErrorCode;
use cropscode_engine_api::Endpoint;
use serde_json::json;

async fn engine_returns(which: Which) {
    let logs = common::logs::capture();
    let path = std::env::temp_dir().join(format!("cropscode-proxy-{which:?}-{}.sock", std::process::id()));
    let mut proxy = EngineProxy::start(&path, socket(which).as_ref());
    let w = WorkerTest::with_endpoint(which, "worker_engine_returns", Endpoint::Unix(path.clone())).await;
    let id = w.running(&w.acme, "survivor").await;
    w.wait_running(1).await;

    proxy.stop().await;
    for _ in 0..3 {
        for (command, params) in [
            ("container.list-all", json!({})),
            ("container.start", json!({"containerId": id})),
            ("container.create", json!({"image": common::BUSYBOX, "tenant": w.acme})),
            ("image.check", json!({"image": common::BUSYBOX})),
        ] {
            w.fails(command, params, ErrorCode::EngineUnavailable).await;
        }
    }

    proxy.resume();
    let listed = w.ok("container.list-all", json!({})).await;
    assert_eq!(listed["containers"][0]["containerId"].as_str(), Some(id.as_str()), "{listed}");
    // Stopped directly on the engine: the count drops, so events are followed again.
    w.t.engine.stop_container(&id, Some(std::time::Duration::from_secs(1))).await.unwrap();
    w.wait_running(0).await;

    let logged = logs.lock().unwrap().clone();
    let endpoint = Endpoint::Unix(path.clone()).to_string();
    let count = |what: &str| logged.lines().filter(|l| l.contains(what) && l.contains(&endpoint)).count();
    assert_eq!(count("the container engine is unavailable"), 1, "{logged}");
    assert_eq!(count("the container engine answers again"), 1, "{logged}");
    drop(w);
    drop(proxy);
}

#[test]
fn docker() {
    smol::block_on(engine_returns(Which::Docker));
}

#[test]
fn podman() {
    smol::block_on(engine_returns(Which::Podman));
}
