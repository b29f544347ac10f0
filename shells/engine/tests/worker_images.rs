//! `image.build` streams its output as progress and leaves a tagged, labelled image;
//! `images.list` marks it managed; `image.check` and `image.delete` work on it; a failing
//! build is `invalid_request`. A container made directly from a worker-built image does
//! not become the worker's (images never carry `cropscode.worker`).

mod common;

use common::worker::WorkerTest;
use cropscode_core::protocol::ErrorCode;
use cropscode_engine_api::{ContainerSpec, ExecLimits, ExecSpec};
use serde_json::json;

worker_test!(worker_images, async |w: &WorkerTest| {
    let e = &w.t.engine;
    let tag = format!("cropscode-test/worker-built-{}:1", w.t.run);
    w.image(&tag);
    let build = json!({
        "tag": tag, "tenant": w.acme,
        // A Dockerfile trying to pass its image off as the worker's.
        "dockerfile": "FROM cropscode-test/busybox:latest\nLABEL cropscode.worker=WORKER cropscode.managed=true\nCOPY motd /etc/motd\nARG FLAVOR\nRUN echo flavor=$FLAVOR && cat /etc/motd\n"
            .replace("WORKER", &w.worker_id),
        "context": [{"path": "motd", "content": "V2VsY29tZQo=", "encoding": "base64", "mode": 420}],
        "buildArgs": {"FLAVOR": "mint"},
        "labels": {"com.example.team": "web"}
    });
    let ran = w.run("image.build", build).await;
    let progress = ran.progress.clone();
    let result = ran.ok();
    assert_eq!(result["tag"].as_str(), Some(tag.as_str()));
    let image_id = result["imageId"].as_str().unwrap().to_owned();
    assert!(image_id.starts_with("sha256:"), "{result}");
    let output: String = progress
        .iter()
        .inspect(|p| assert_eq!(p["phase"], "build", "{p}"))
        .map(|p| p["message"].as_str().unwrap_or_default())
        .collect();
    assert!(progress.len() > 1 && output.contains("flavor=mint") && output.contains("Welcome"), "{output}");

    let image = e.inspect_image(&tag).await.expect("built");
    let label = |key: &str| image.config.labels.get(key).map(String::as_str);
    assert_eq!(label("cropscode.managed"), Some("true"));
    assert_eq!(label("cropscode.built-by"), Some(w.worker_id.as_str()));
    assert_eq!(label("cropscode.tenant"), Some(w.acme.as_str()));
    assert_eq!(label("cropscode.worker"), Some(""), "the Dockerfile's worker label is neutralized");
    assert_eq!(label("com.example.team"), Some("web"));

    let listed = w.ok("images.list", json!({"filter": format!("cropscode-test/worker-built-{}", w.t.run)})).await;
    let listed = listed["images"].as_array().unwrap().clone();
    let row = listed.iter().find(|i| i["imageId"] == image_id.as_str()).unwrap_or_else(|| panic!("{listed:?}"));
    assert_eq!(row["managed"], true);
    assert!(row["tags"].as_array().unwrap().iter().any(|t| t.as_str().unwrap().ends_with(&tag)), "{row}");
    let base = w.ok("images.list", json!({"filter": common::BUSYBOX})).await;
    assert_eq!(base["images"][0]["managed"], false, "{base}");

    let check = w.ok("image.check", json!({"image": tag})).await;
    assert_eq!((check["exists"].as_bool(), check["imageId"].as_str()), (Some(true), Some(image_id.as_str())));
    assert!(check["sizeBytes"].as_u64().unwrap() > 0);
    let missing = w.ok("image.check", json!({"image": "cropscode-test/no-such-image:1"})).await;
    assert_eq!(missing, json!({"image": "cropscode-test/no-such-image:1", "exists": false}));

    // Made directly from the image: carries its labels, is still not the worker's.
    let spec = ContainerSpec { image: tag.clone(), ..w.t.sleeper() };
    let direct = e.create_container(Some(&w.t.name("from-built")), &spec).await.expect("direct create");
    w.fails("container.start", json!({"containerId": direct.id}), ErrorCode::NotFound).await;
    assert!(w.ok("container.list-all", json!({})).await["containers"].as_array().unwrap().is_empty());

    // Through the worker it is; the image's content is there.
    let id = w.running_from(&w.acme, "built", &tag).await;
    let cat = ExecSpec { cmd: vec!["cat".into(), "/etc/motd".into()], ..ExecSpec::default() };
    assert_eq!(e.exec(&id, &cat, ExecLimits::default()).await.unwrap().stdout, b"Welcome\n");

    // In use by a container: conflict unless forced.
    e.remove_container(&direct.id, Default::default()).await.unwrap();
    w.fails("image.delete", json!({"image": tag}), ErrorCode::Conflict).await;
    w.ok("container.remove", json!({"containerId": id, "force": true})).await;
    let deleted = w.ok("image.delete", json!({"image": tag})).await;
    assert!(!deleted["deleted"].as_array().unwrap().is_empty() || !deleted["untagged"].as_array().unwrap().is_empty());
    w.fails("image.delete", json!({"image": tag}), ErrorCode::NotFound).await;
    assert_eq!(w.ok("image.check", json!({"image": tag})).await["exists"], false);

    // Builds that cannot succeed.
    let failing =
        json!({"tag": format!("{tag}-bad"), "dockerfile": "FROM cropscode-test/busybox:latest\nRUN exit 3\n"});
    let error = w.fails("image.build", failing, ErrorCode::InvalidRequest).await;
    assert!(error.message.contains("build failed"), "{error:?}");
    let no_base = json!({"tag": format!("{tag}-nobase"), "dockerfile": "FROM cropscode-test/no-such-base:1\n"});
    let error = w.err("image.build", no_base).await;
    assert!(matches!(error.code, ErrorCode::NotFound | ErrorCode::InvalidRequest), "{error:?}");
    let clash =
        json!({"tag": tag, "dockerfile": "FROM scratch\n", "context": [{"path": "Dockerfile", "content": "x"}]});
    w.fails("image.build", clash, ErrorCode::InvalidRequest).await;
});
