//! `image.delete` removes only images the worker built or pulled, never the machine
//! owner's own: an image the owner pulled stays `forbidden` even after the worker used it;
//! once the worker pulled it itself, it may delete it. On both engines.

use cropscode_tests::*;
use serde_json::json;

fn only_its_own_images(t: &EngineRun) {
    let image = t.engines.registry_busybox();
    let tenant = t.tenant("acme");
    let create = |suffix: &str| json!({ "image": image, "tenant": tenant, "name": t.name(suffix), "command": ["true"], "labels": t.labels() });

    // The owner pulls the image directly: it is theirs.
    block_on(async {
        let mut pull = t.client.pull_image(&image).await.expect("the owner pulls");
        while let Some(step) = pull.next().await {
            step.expect("pull progress");
        }
    });
    t.track_image(&image);
    let refused = t.fails_with("forbidden", "image.delete", json!({ "image": image }));
    assert!(refused.message.contains("not built or pulled by this worker"), "{}", refused.message);

    // Using it through the worker does not make it the worker's.
    let used = t.ok("container.create", create("used"));
    assert_eq!(used["pulled"], false, "{used}");
    t.ok("container.remove", json!({ "containerId": used["containerId"], "tenant": tenant, "force": true }));
    t.fails_with("forbidden", "image.delete", json!({ "image": image }));
    assert_eq!(t.ok("image.check", json!({ "image": image }))["exists"], true, "the owner's image is still there");

    // Once the owner removed it and the worker pulled it itself, the worker may delete it.
    block_on(t.client.remove_image(&image, true)).expect("the owner removes their image");
    let pulled = t.ok("container.create", create("pulled"));
    assert_eq!(pulled["pulled"], true, "{pulled}");
    t.ok("container.remove", json!({ "containerId": pulled["containerId"], "tenant": tenant, "force": true }));
    let listed = t.ok("images.list", json!({}));
    let mine = listed["images"].as_array().expect("images").iter().any(|i| {
        i["managed"] == true
            && i["tags"].as_array().is_some_and(|tags| {
                tags.iter().any(|tag| {
                    tag.as_str().is_some_and(|s| s.ends_with("cropscode-test/busybox:latest") && s.contains("5000"))
                })
            })
    });
    assert!(mine, "the pulled image is listed as managed: {listed}");
    t.ok("image.delete", json!({ "image": image }));
    assert_eq!(t.ok("image.check", json!({ "image": image }))["exists"], false);
}

engine_tests!(only_its_own_images);
