//! Calls share kept-alive connections: sequential calls use one, concurrent calls open
//! more and the pool keeps at most its limit; streamed answers read to the end give their
//! connection back, half-read ones do not.

mod common;

use common::TestEngine;
use cropscode_engine_api::{ClientConfig, Endpoint, EngineClient, ExecLimits, ExecSpec, ListContainers};

engine_test!(reuses_connections, async |t: &TestEngine| {
    let e = &t.engine;
    e.version().await.expect("version");
    let mine = ListContainers { all: true, labels: vec![t.run_filter()], ..Default::default() };
    for _ in 0..50 {
        e.list_containers(&mine).await.expect("list");
        e.ping().await.expect("ping");
    }
    assert_eq!(e.connections_opened(), 1, "sequential calls should share one connection");
    assert_eq!(e.idle_connections(), 1);

    // Concurrent calls.
    let config = ClientConfig { max_idle_connections: 2, ..ClientConfig::default() };
    let endpoint = Endpoint::Unix(common::socket(t.which).into());
    let pooled = EngineClient::with_config(endpoint, config);
    let calls = (0..8).map(|_| {
        let pooled = pooled.clone();
        let mine = mine.clone();
        smol::spawn(async move { pooled.list_containers(&mine).await })
    });
    for call in calls.collect::<Vec<_>>() {
        call.await.expect("concurrent list");
    }
    assert!(pooled.connections_opened() >= 1);
    assert!(pooled.idle_connections() <= 2, "idle {}", pooled.idle_connections());

    // An exec's hijacked connection is not given back; the next call opens a fresh one and
    // works.
    let id = t.running_container().await;
    let before = e.connections_opened();
    let out = e
        .exec(&id, &ExecSpec { cmd: vec!["echo".into(), "x".into()], ..Default::default() }, ExecLimits::default())
        .await
        .expect("exec");
    assert_eq!(out.stdout, b"x\n");
    e.list_containers(&mine).await.expect("list after exec");
    assert!(e.connections_opened() > before);

    // A streamed answer dropped half-read closes its connection instead of being reused.
    let mut output = e
        .start_exec(
            &e.create_exec(
                &id,
                &ExecSpec {
                    cmd: vec!["sh".into(), "-c".into(), "echo one; sleep 2; echo two".into()],
                    ..Default::default()
                },
            )
            .await
            .expect("create"),
            false,
        )
        .await
        .expect("start");
    assert!(output.next().await.is_some());
    drop(output);
    e.list_containers(&mine).await.expect("list after a dropped stream");
});
