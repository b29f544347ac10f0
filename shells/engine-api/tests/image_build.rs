//! Building a tiny Dockerfile streams the build output; the image exists, labelled, and
//! runs; then it is removed.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::TestEngine;
use cropscode_core::protocol::ErrorCode;
use cropscode_engine_api::{BuildOptions, ContainerSpec, ExecLimits, ExecSpec, ListImages, TarBuilder};

engine_test!(image_build, async |t: &TestEngine| {
    let e = &t.engine;
    let tag = format!("cropscode-test/built-{}:latest", t.run);
    let mut context = TarBuilder::new();
    context
        .file(
            "Dockerfile",
            b"FROM cropscode-test/busybox:latest\nCOPY greeting.txt /greeting.txt\nRUN echo built-step-output && cat /greeting.txt\n",
            0o644,
        )
        .unwrap();
    context.file("greeting.txt", b"hello from the build context\n", 0o644).unwrap();
    let options = BuildOptions {
        tags: vec![tag.clone()],
        labels: BTreeMap::from([("cropscode.test".into(), "1".into()), ("cropscode.test.run".into(), t.run.clone())]),
        ..BuildOptions::default()
    };
    let mut stream = e.build_image(&options, Bytes::from(context.finish())).await.expect("build starts");
    let mut output = String::new();
    let mut messages = 0;
    while let Some(message) = stream.next().await {
        let message = message.expect("build message");
        messages += 1;
        output.push_str(message.stream.as_deref().unwrap_or_default());
    }
    eprintln!("{:?}: {messages} messages, image id {:?}\n{output}", t.which, stream.image_id());
    assert!(messages > 1, "output should arrive in pieces");
    assert!(output.contains("built-step-output"), "{output}");
    assert!(output.contains("hello from the build context"), "{output}");

    let inspect = e.inspect_image(&tag).await.expect("built image");
    assert_eq!(inspect.config.labels.get("cropscode.test.run"), Some(&t.run));
    if let Some(id) = stream.image_id() {
        assert!(
            inspect.id.ends_with(id.trim_start_matches("sha256:"))
                || id.ends_with(inspect.id.trim_start_matches("sha256:")),
            "{id} vs {}",
            inspect.id
        );
    }
    let listed = e
        .list_images(&ListImages { labels: vec![format!("cropscode.test.run={}", t.run)], ..Default::default() })
        .await
        .expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");

    // The image runs.
    let spec = ContainerSpec {
        image: tag.clone(),
        cmd: Some(vec!["sleep".into(), "60".into()]),
        labels: t.labels(),
        ..Default::default()
    };
    let created = e.create_container(None, &spec).await.expect("create from built image");
    e.start_container(&created.id).await.expect("start");
    let cat = ExecSpec { cmd: vec!["cat".into(), "/greeting.txt".into()], ..Default::default() };
    assert_eq!(
        e.exec(&created.id, &cat, ExecLimits::default()).await.expect("cat").stdout,
        b"hello from the build context\n"
    );
    t.cleanup().await;

    // A failing step is an error carrying the build's message.
    let mut broken = TarBuilder::new();
    broken.file("Dockerfile", b"FROM cropscode-test/busybox:latest\nRUN exit 7\n", 0o644).unwrap();
    let result = match e.build_image(&BuildOptions::default(), Bytes::from(broken.finish())).await {
        Ok(stream) => stream.finish(|_| {}).await,
        Err(err) => Err(err),
    };
    let err = result.expect_err("failing RUN");
    assert_ne!(err.code(), ErrorCode::NotFound, "{err:?}");
    eprintln!("{:?}: failing build: {err}", t.which);

    let removed = e.remove_image(&tag, false).await.expect("remove built image");
    assert!(!removed.is_empty());
    assert!(!e.image_exists(&tag).await.expect("exists after removal"));
});
