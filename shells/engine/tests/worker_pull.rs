//! `container.create` pulls a missing image from the (local) registry and reports the
//! pull as progress; `pull: always` pulls again, `pull: never` and unknown tags are
//! `not_found`.

mod common;

use common::worker::WorkerTest;
use cropscode_core::protocol::ErrorCode;
use serde_json::json;

worker_test!(worker_pull, async |w: &WorkerTest| {
    let e = &w.t.engine;
    let image = format!("{}/cropscode-test/busybox:latest", common::registry());
    w.image(&image);
    match e.remove_image(&image, true).await {
        Ok(_) => {}
        Err(err) if err.is_not_found() => {}
        Err(err) => panic!("removing {image}: {err:?}"),
    }

    let ran = w.run("container.create", json!({"image": image, "tenant": w.acme, "name": "pulled"})).await;
    let progress = ran.progress.clone();
    let created = ran.ok();
    assert_eq!(created["pulled"], true, "{created}");
    assert!(!progress.is_empty(), "no pull progress");
    for report in &progress {
        assert_eq!(report["phase"], "pull", "{report}");
        assert!(report["message"].as_str().is_some_and(|m| !m.is_empty()), "{report}");
    }
    eprintln!("{:?}: {} progress reports, last {}", w.t.which, progress.len(), progress.last().unwrap());
    assert!(e.image_exists(&image).await.unwrap());

    let again = w.ok("container.create", json!({"image": image, "tenant": w.acme})).await;
    assert_eq!(again["pulled"], false);
    let ran = w.run("container.create", json!({"image": image, "tenant": w.acme, "pull": "always"})).await;
    assert!(!ran.progress.is_empty());
    assert_eq!(ran.ok()["pulled"], true);

    let missing = format!("{}/cropscode-test/busybox:no-such-tag", common::registry());
    let error = w
        .fails("container.create", json!({"image": missing, "tenant": w.acme, "pull": "never"}), ErrorCode::NotFound)
        .await;
    assert!(error.message.contains("`pull` is `never`"), "{error:?}");
    w.fails("container.create", json!({"image": missing, "tenant": w.acme}), ErrorCode::NotFound).await;
});
