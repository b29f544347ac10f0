//! `image.build` builds from a Dockerfile and inline context files, streams the build's
//! output as `progress` (`phase: build`), and tags and labels the image; afterwards
//! `image.check` finds it, `images.list` lists it as managed, and a container made from it
//! has the context's files and the build argument's effect. `image.delete` refuses an
//! image a container uses (`conflict`), deletes it once unused, and `image.check` then
//! says it is gone; deleting it again is `not_found`. A failing build is `invalid_request`.

use cropscode_tests::*;
use serde_json::{Value, json};

fn tags_of(image: &Value) -> Vec<String> {
    image["tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_string)).collect()
}

/// Podman qualifies names: imported images are `localhost/<name>`, images built through
/// its Docker-compatible API `docker.io/<name>`; every spelling is the same image.
fn same_tag(listed: &str, tag: &str) -> bool {
    listed == tag || ["localhost/", "docker.io/"].iter().any(|prefix| listed.strip_prefix(prefix) == Some(tag))
}

fn images(t: &EngineRun) {
    let tenant = t.tenant("acme");
    let tag = t.image_tag("built");
    t.track_image(&tag);
    let hello = base64_encode(b"#!/bin/sh\necho hello from the image\n");
    let built = t.command(
        "image.build",
        json!({
            "tag": tag,
            "dockerfile": format!(
                "FROM {BUSYBOX}\nCOPY motd /etc/motd\nCOPY bin/hello /usr/local/bin/hello\nARG FLAVOR\nRUN echo $FLAVOR > /etc/flavor\n"
            ),
            "tenant": tenant,
            "context": [
                {"path": "motd", "content": "Welcome to the test image\n"},
                {"path": "bin/hello", "content": hello, "encoding": "base64", "mode": 493},
            ],
            "buildArgs": {"FLAVOR": "mint"},
            "labels": {RUN_LABEL: t.run, "com.example.team": "web"},
            "networkMode": "none",
        }),
    );
    let result = match built.outcome() {
        Ok(v) => v.clone(),
        Err(e) => panic!("image.build failed: {} {}", e.code, e.message),
    };
    assert_eq!(result["tag"], tag.as_str(), "{result}");
    let image_id = result["imageId"].as_str().expect("imageId").to_string();
    assert!(image_id.starts_with("sha256:"), "imageId {image_id}");

    // The build's output came back as progress, before the result.
    assert!(!built.progress.is_empty(), "no build progress");
    for p in &built.progress {
        assert_eq!(p["phase"], "build", "build progress: {p}");
        assert!(p["message"].is_string(), "{p}");
    }
    let output: String = built.progress.iter().filter_map(|p| p["message"].as_str()).collect();
    assert!(output.to_lowercase().contains("copy motd /etc/motd"), "the build's steps are in the progress:\n{output}");

    // Present, with the worker's labels and the caller's.
    let check = t.ok("image.check", json!({ "image": tag }));
    assert_eq!(check["image"], tag.as_str(), "{check}");
    assert_eq!(check["exists"], true, "{check}");
    assert_eq!(check["imageId"], image_id.as_str(), "{check}");
    assert!(check["sizeBytes"].as_u64().is_some_and(|s| s > 0), "{check}");
    let (status, inspect) = t.engine_get(&format!("/images/{image_id}/json"));
    assert_eq!(status, 200, "{inspect}");
    let labels = &inspect["Config"]["Labels"];
    assert_eq!(labels["com.example.team"], "web", "{labels}");
    assert!(
        labels.as_object().is_some_and(|l| l.keys().any(|k| k.starts_with("cropscode."))),
        "the worker's cropscode.* labels are on the image: {labels}"
    );

    // Listed, as managed.
    let listed = t.ok("images.list", json!({ "filter": tag }));
    let found: Vec<&Value> = listed["images"]
        .as_array()
        .expect("images array")
        .iter()
        .filter(|i| tags_of(i).iter().any(|l| same_tag(l, &tag)))
        .collect();
    assert_eq!(found.len(), 1, "{listed}");
    assert_eq!(found[0]["imageId"], image_id.as_str(), "{listed}");
    assert_eq!(found[0]["managed"], true, "{listed}");
    assert!(found[0]["sizeBytes"].is_u64() && found[0]["createdAt"].is_i64(), "{listed}");
    assert!(found[0]["digests"].is_array(), "{listed}");
    let everything = t.ok("images.list", json!({}));
    let base = everything["images"]
        .as_array()
        .expect("images array")
        .iter()
        .find(|i| tags_of(i).iter().any(|l| same_tag(l, BUSYBOX)))
        .unwrap_or_else(|| panic!("{BUSYBOX} is not listed"))
        .clone();
    assert_eq!(base["managed"], false, "an image the worker neither built nor pulled: {base}");

    // A container of it has what the Dockerfile put there.
    let created = t.ok(
        "container.create",
        json!({ "image": tag, "tenant": tenant, "command": ["sleep", "3600"], "labels": t.labels(), "pull": "never" }),
    );
    let id = created["containerId"].as_str().expect("containerId").to_string();
    assert_eq!(created["pulled"], false, "{created}");
    t.ok("container.start", json!({ "containerId": id }));
    let out = t.ok("container.exec", json!({ "containerId": id, "command": ["cat", "/etc/motd", "/etc/flavor"] }));
    assert_eq!(out["stdout"], "Welcome to the test image\nmint\n", "{out}");
    let out = t.ok("container.exec", json!({ "containerId": id, "command": ["hello"] }));
    assert_eq!(out["stdout"], "hello from the image\n", "{out}");

    // In use by a (stopped) container: conflict. Unused: deleted.
    t.ok("container.stop", json!({ "containerId": id, "graceMs": 1000 }));
    t.fails_with("conflict", "image.delete", json!({ "image": tag }));
    assert_eq!(t.ok("image.check", json!({ "image": tag }))["exists"], true, "a refused delete deleted the image");
    t.ok("container.remove", json!({ "containerId": id }));
    let deleted = t.ok("image.delete", json!({ "image": tag }));
    assert_eq!(deleted["image"], tag.as_str(), "{deleted}");
    let untagged: Vec<String> =
        deleted["untagged"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)).collect();
    assert!(untagged.iter().any(|u| same_tag(u, &tag)), "untagged {untagged:?}");
    let deleted_ids: Vec<&str> =
        deleted["deleted"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
    let hex = image_id.trim_start_matches("sha256:");
    assert!(
        deleted_ids.iter().any(|d| d.trim_start_matches("sha256:") == hex),
        "the image is among the deleted: {deleted}"
    );
    let gone = t.ok("image.check", json!({ "image": tag }));
    assert_eq!(gone["exists"], false, "{gone}");
    assert!(gone["imageId"].is_null() && gone["sizeBytes"].is_null(), "{gone}");
    t.fails_with("not_found", "image.delete", json!({ "image": tag }));

    // A failing step fails the build, and leaves no image under the tag.
    let broken = t.image_tag("broken");
    t.track_image(&broken);
    let failed = t.command(
        "image.build",
        json!({
            "tag": broken,
            "dockerfile": format!("FROM {BUSYBOX}\nRUN echo about to fail && exit 7\n"),
            "labels": t.labels(),
        }),
    );
    match failed.outcome() {
        Ok(v) => panic!("a build with a failing RUN succeeded: {v}"),
        Err(e) => assert_eq!(e.code.as_str(), "invalid_request", "a failed build: {}", e.message),
    }
    assert_eq!(t.ok("image.check", json!({ "image": broken }))["exists"], false);

    // Ids have one form on every engine: `deleted` speaks like `imageId` (`sha256:…`), so an
    // orchestrator can match them (Podman's API answers bare hex).
    assert!(deleted_ids.iter().all(|d| d.starts_with("sha256:")), "deleted ids are `sha256:…`: {deleted}");
}

engine_tests!(images);
