//! Engine errors arrive with the protocol's codes and the engine's message.

mod common;

use common::{BUSYBOX, TestEngine};
use cropscode_core::protocol::ErrorCode;
use cropscode_engine_api::{ContainerSpec, Endpoint, EngineClient, ExecLimits, ExecSpec, RemoveContainer};

engine_test!(engine_errors, async |t: &TestEngine| {
    let e = &t.engine;
    let ghost = t.name("ghost");

    let err = e.inspect_container(&ghost).await.expect_err("inspect missing");
    assert_eq!(err.code(), ErrorCode::NotFound, "{err:?}");
    assert!(err.to_wire().message.to_lowercase().contains("no such container"), "{err}");
    for err in [
        e.start_container(&ghost).await.expect_err("start missing"),
        e.stop_container(&ghost, None).await.expect_err("stop missing"),
        e.remove_container(&ghost, RemoveContainer { force: true, volumes: false }).await.expect_err("remove missing"),
        e.exec(&ghost, &ExecSpec { cmd: vec!["true".into()], ..Default::default() }, ExecLimits::default())
            .await
            .expect_err("exec in missing"),
    ] {
        assert_eq!(err.code(), ErrorCode::NotFound, "{err:?}");
    }

    // Name conflict.
    let name = t.name("taken");
    e.create_container(Some(&name), &t.sleeper()).await.expect("first create");
    let err = e.create_container(Some(&name), &t.sleeper()).await.expect_err("same name");
    assert_eq!(err.code(), ErrorCode::Conflict, "{err:?}");

    // Missing image.
    let spec =
        ContainerSpec { image: "cropscode-test/no-such-image:latest".into(), labels: t.labels(), ..Default::default() };
    let err = e.create_container(None, &spec).await.expect_err("missing image");
    assert_eq!(err.code(), ErrorCode::NotFound, "{err:?}");
    let err = e.inspect_image("cropscode-test/no-such-image:latest").await.expect_err("inspect missing image");
    assert_eq!(err.code(), ErrorCode::NotFound, "{err:?}");
    assert!(e.image_exists(BUSYBOX).await.expect("image_exists"));
    assert!(!e.image_exists("cropscode-test/no-such-image:latest").await.expect("image_exists, missing"));

    // Names that would leave their path segment are refused before anything is sent.
    let err = e.inspect_container("../../version").await.expect_err("path escape");
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
});

#[cfg(unix)]
#[test]
fn no_engine_is_engine_unavailable() {
    smol::block_on(async {
        let missing = EngineClient::new(Endpoint::Unix("/run/cropscode-test/no-such-engine.sock".into()));
        let err = missing.ping().await.expect_err("no socket");
        assert_eq!(err.code(), ErrorCode::EngineUnavailable, "{err:?}");
        assert!(err.is_unavailable());

        // A socket file nobody listens on: connection refused.
        let path = std::env::temp_dir().join(format!("cropscode-refused-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
        let refused = EngineClient::new(Endpoint::Unix(path.clone()));
        let err = refused.version().await.expect_err("refused");
        assert_eq!(err.code(), ErrorCode::EngineUnavailable, "{err:?}");
        let _ = std::fs::remove_file(&path);
    });
}
