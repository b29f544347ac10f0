//! Create, start, inspect, list by label, stop and remove a labelled busybox container.

mod common;

use std::time::Duration;

use common::TestEngine;
use cropscode_engine_api::{ListContainers, RemoveContainer};

engine_test!(container_lifecycle, async |t: &TestEngine| {
    let e = &t.engine;
    let name = t.name("life");
    let created = e.create_container(Some(&name), &t.sleeper()).await.expect("create");
    assert!(!created.id.is_empty());

    let inspect = e.inspect_container(&created.id).await.expect("inspect created");
    assert_eq!(inspect.state.status, "created");
    assert_eq!(inspect.name.trim_start_matches('/'), name);
    assert_eq!(inspect.config.labels.get("cropscode.test").map(String::as_str), Some("1"));

    e.start_container(&created.id).await.expect("start");
    e.start_container(&created.id).await.expect("starting a running container is not an error");
    let inspect = e.inspect_container(&name).await.expect("inspect by name");
    assert!(inspect.state.running, "{:?}", inspect.state);
    assert!(inspect.state.pid > 0);

    // Label filters: this run's label finds it, running only and with --all.
    let mine = ListContainers { labels: vec![t.run_filter()], ..Default::default() };
    let listed = e.list_containers(&mine).await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, created.id);
    assert_eq!(listed[0].name(), Some(name.as_str()));
    assert_eq!(listed[0].state, "running");
    let both = ListContainers { labels: vec!["cropscode.test=1".into(), t.run_filter()], ..Default::default() };
    assert_eq!(e.list_containers(&both).await.expect("list, two labels").len(), 1);
    let other = ListContainers { all: true, labels: vec!["cropscode.test.run=nobody".into()], ..Default::default() };
    assert!(e.list_containers(&other).await.expect("list, other run").is_empty());

    // Stop with a short grace period: busybox sleep ignores nothing, but SIGTERM to PID 1
    // without a handler is ignored, so this also checks the SIGKILL after the grace time.
    e.stop_container(&created.id, Some(Duration::from_secs(1))).await.expect("stop");
    e.stop_container(&created.id, Some(Duration::from_secs(1)))
        .await
        .expect("stopping a stopped container is not an error");
    let inspect = e.inspect_container(&created.id).await.expect("inspect stopped");
    assert!(!inspect.state.running);
    assert_eq!(inspect.state.status, "exited");
    assert!(e.list_containers(&mine).await.expect("list running").is_empty());
    let all = ListContainers { all: true, ..mine.clone() };
    assert_eq!(e.list_containers(&all).await.expect("list all")[0].state, "exited");

    e.remove_container(&created.id, RemoveContainer::default()).await.expect("remove");
    let gone = e.inspect_container(&created.id).await.expect_err("removed");
    assert!(gone.is_not_found(), "{gone:?}");
});

engine_test!(force_removes_a_running_container, async |t: &TestEngine| {
    let id = t.running_container().await;
    let refused = t.engine.remove_container(&id, RemoveContainer::default()).await.expect_err("running");
    assert_eq!(refused.code(), cropscode_core::protocol::ErrorCode::Conflict, "{refused:?}");
    t.engine.remove_container(&id, RemoveContainer { force: true, volumes: true }).await.expect("force remove");
    assert!(t.engine.inspect_container(&id).await.unwrap_err().is_not_found());
});
