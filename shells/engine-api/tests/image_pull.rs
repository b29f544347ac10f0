//! Pulling from the local registry streams progress and leaves the image present; a tag
//! the registry does not have is `not_found`.

mod common;

use common::{TestEngine, registry};
use cropscode_core::protocol::ErrorCode;

engine_test!(image_pull, async |t: &TestEngine| {
    let e = &t.engine;
    let image = format!("{}/cropscode-test/busybox:latest", registry());
    // Start without the image (untag; the layers stay, shared with the local busybox).
    match e.remove_image(&image, true).await {
        Ok(_) => {}
        Err(err) if err.is_not_found() => {}
        Err(err) => panic!("removing {image}: {err:?}"),
    }
    assert!(!e.image_exists(&image).await.expect("exists before"));

    let stream = e.pull_image(&image).await.expect("pull starts");
    let mut messages = Vec::new();
    stream.finish(|p| messages.push(p.clone())).await.expect("pull finishes");
    assert!(!messages.is_empty(), "no progress messages");
    eprintln!("{:?}: {} progress messages, last {:?}", t.which, messages.len(), messages.last());
    let inspect = e.inspect_image(&image).await.expect("pulled image");
    assert!(inspect.repo_tags.iter().any(|tag| tag.ends_with("cropscode-test/busybox:latest")), "{inspect:?}");

    // Without a tag, `latest` is pulled (not every tag).
    let untagged = format!("{}/cropscode-test/busybox", registry());
    e.pull_image(&untagged).await.expect("pull untagged").finish(|_| {}).await.expect("pull untagged finishes");

    let missing = format!("{}/cropscode-test/busybox:no-such-tag", registry());
    let err = match e.pull_image(&missing).await {
        Ok(stream) => stream.finish(|_| {}).await.expect_err("missing tag"),
        Err(err) => err,
    };
    assert_eq!(err.code(), ErrorCode::NotFound, "{err:?}");

    e.remove_image(&image, true).await.expect("remove pulled image");
});
