//! `container.setup`: clones (default branch, branch, tag, commit, shallow) into a
//! directory the worker creates for the container's user, writes files with modes and
//! owners without touching existing directories, and passes a git credential that then
//! appears nowhere: not in the engine's view of the container or its execs, not in the
//! clone, not in the result, not in the logs.
//!
//! The repository is served inside the container itself: a bare repository for `file://`,
//! and busybox `httpd` with basic auth in front of `git http-backend` for `http://`.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use common::worker::WorkerTest;
use cropscode_core::protocol::ErrorCode;
use cropscode_engine_api::{EventFilter, ExecLimits, ExecSpec};
use serde_json::json;

const GIT_IMAGE: &str = "cropscode-test/git:latest";
const TOKEN: &str = "s3cr3t/T0k+en@xyz";
const URL: &str = "http://127.0.0.1:8080/cgi-bin/git/repo.git";

/// Builds the repositories and starts the HTTP server, as root; returns the commits of
/// `main`'s first and second commit and of `feature`.
const FIXTURE: &str = r#"set -e
mkdir -p /src && cd /src && git init -q -b main
echo one > README && git add README && git -c user.name=t -c user.email=t@t commit -qm one
git rev-parse HEAD
echo two >> README && git -c user.name=t -c user.email=t@t commit -qam two && git tag v1
git rev-parse HEAD
git checkout -qb feature && echo f > FEATURE && git add FEATURE && git -c user.name=t -c user.email=t@t commit -qm f
git rev-parse HEAD
git checkout -q main
git clone -q --bare /src /srv/git/repo.git && chown -R 1000:1000 /srv/git
git clone -q --bare /src /srv/http/repo.git
mkdir -p /srv/www/cgi-bin
printf '#!/bin/sh\nexport GIT_PROJECT_ROOT=/srv/http GIT_HTTP_EXPORT_ALL=1\nexec /usr/lib/git-core/git-http-backend\n' > /srv/www/cgi-bin/git
chmod 755 /srv/www/cgi-bin/git
printf '/cgi-bin:alice:%s\n' "$TOKEN" > /srv/httpd.conf
httpd -p 127.0.0.1:8080 -h /srv/www -c /srv/httpd.conf
"#;

worker_test!(worker_setup, async |w: &WorkerTest| {
    let logs = common::logs::capture();
    let e = &w.t.engine;
    // Docker forgets finished execs in the container's `ExecIDs` but keeps them for
    // `GET /exec/{id}/json`; its events name them.
    let filter =
        EventFilter { types: vec!["container".into()], labels: vec![format!("cropscode.worker={}", w.worker_id)] };
    let mut events = e.events(&filter).await.expect("events");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let collect = seen.clone();
    let _collector = smol::spawn(async move {
        while let Some(Ok(event)) = events.next().await {
            collect.lock().unwrap().push(event);
        }
    });
    let created = w
        .ok(
            "container.create",
            json!({"image": GIT_IMAGE, "tenant": w.acme, "name": "setup", "command": ["sleep", "300"], "user": "user"}),
        )
        .await;
    let id = created["containerId"].as_str().unwrap().to_owned();
    w.ok("container.start", json!({"containerId": id})).await;
    let fixture = ExecSpec {
        cmd: vec!["sh".into(), "-c".into(), FIXTURE.into()],
        env: vec![format!("TOKEN={TOKEN}")],
        user: Some("0".into()),
        ..ExecSpec::default()
    };
    let out = e.exec(&id, &fixture, ExecLimits::default()).await.expect("fixture");
    assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    let commits: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    let [first, main, feature] = <[String; 3]>::try_from(commits).expect("three commits");
    // The fixture's own exec carried the token in its env: later checks look at the
    // worker's execs only.
    let fixture_execs = e.inspect_container(&id).await.unwrap().exec_ids;
    let sh = |script: &str| json!({"containerId": id, "command": ["sh", "-c", script]});

    // Default branch into /workspace (created for uid 1000), plus files.
    let result = w
        .ok(
            "container.setup",
            json!({
                "containerId": "setup", "tenant": w.acme,
                "repo": {"url": "file:///srv/git/repo.git"},
                "files": [
                    {"path": "/workspace/CLAUDE.md", "content": "# Notes\n$(touch /tmp/pwned) `id`\n", "mode": 420},
                    {"path": "/home/user/bin/tool", "content": "IyEvYmluL3NoCmVjaG8gdG9vbAo=", "encoding": "base64", "mode": 493},
                    {"path": "/etc/cropscode-note", "content": "note"}
                ]
            }),
        )
        .await;
    assert_eq!(
        result,
        json!({"containerId": id, "targetDir": "/workspace", "commit": main, "filesWritten": 3}),
        "{result}"
    );
    let out = w
        .ok(
            "container.exec",
            sh("cat /workspace/README /workspace/CLAUDE.md; /home/user/bin/tool; test ! -e /tmp/pwned && \
                stat -c '%n %u:%g %a' /workspace /workspace/CLAUDE.md /home/user/bin /home/user/bin/tool /etc /etc/cropscode-note"),
        )
        .await;
    assert_eq!(
        out["stdout"],
        "one\ntwo\n# Notes\n$(touch /tmp/pwned) `id`\ntool\n\
         /workspace 1000:1000 755\n/workspace/CLAUDE.md 1000:1000 644\n/home/user/bin 1000:1000 755\n\
         /home/user/bin/tool 1000:1000 755\n/etc 0:0 755\n/etc/cropscode-note 1000:1000 644\n",
        "{out}"
    );

    // Into the same, now non-empty, directory: conflict.
    let repo = json!({"url": "file:///srv/git/repo.git"});
    w.fails("container.setup", json!({"containerId": id, "repo": repo}), ErrorCode::Conflict).await;
    // A branch, a tag, a commit (full id), shallow.
    for (git_ref, expected, dir) in
        [("feature", &feature, "/w/branch"), ("v1", &main, "/w/tag"), (first.as_str(), &first, "/w/commit")]
    {
        let params =
            json!({"containerId": id, "repo": {"url": "file:///srv/git/repo.git", "ref": git_ref}, "targetDir": dir});
        let result = w.ok("container.setup", params).await;
        assert_eq!(result["commit"].as_str(), Some(expected.as_str()), "{git_ref}: {result}");
    }
    let shallow =
        json!({"containerId": id, "repo": {"url": "file:///srv/git/repo.git", "depth": 1}, "targetDir": "/w/shallow"});
    w.ok("container.setup", shallow).await;
    let count = w.ok("container.exec", sh("git -C /w/shallow rev-list --count HEAD")).await;
    assert_eq!(count["stdout"], "1\n", "{count}");
    let missing =
        json!({"containerId": id, "repo": {"url": "file:///srv/git/repo.git", "ref": "nope"}, "targetDir": "/w/nope"});
    w.fails("container.setup", missing, ErrorCode::NotFound).await;

    // Over http with basic auth: without the credential, with a wrong one, with the right one.
    let http = |credential: Option<&str>, dir: &str| {
        let mut repo = json!({"url": URL, "username": "alice"});
        if let Some(credential) = credential {
            repo["credential"] = json!(credential);
        }
        json!({"containerId": id, "repo": repo, "targetDir": dir})
    };
    w.fails("container.setup", http(None, "/w/http-none"), ErrorCode::Forbidden).await;
    let wrong = w.fails("container.setup", http(Some("wrong-Pa55"), "/w/http-wrong"), ErrorCode::Forbidden).await;
    assert!(!wrong.message.contains("wrong-Pa55"), "{wrong:?}");
    let result = w.ok("container.setup", http(Some(TOKEN), "/w/http")).await;
    assert_eq!(result["commit"].as_str(), Some(main.as_str()));
    assert!(!result.to_string().contains(TOKEN));
    // Only for http(s).
    let file_with_secret = json!({"containerId": id, "repo": {"url": "file:///srv/git/repo.git", "credential": TOKEN}});
    w.fails("container.setup", file_with_secret, ErrorCode::InvalidRequest).await;

    // The credential is nowhere: the container's config and every exec the worker ran
    // (as the engine reports them), the scratch directory, the clone, the logs.
    let inspect = raw_get(w, &format!("/containers/{id}/json"));
    assert!(!inspect.contains(TOKEN) && !inspect.contains("T0k"), "in the container's inspect");
    smol::Timer::after(std::time::Duration::from_millis(300)).await;
    let mut execs = e.inspect_container(&id).await.unwrap().exec_ids;
    for event in seen.lock().unwrap().iter() {
        assert!(!format!("{event:?}").contains("T0k"), "in an event: {event:?}");
        execs.extend(event.actor.attributes.get("execID").cloned());
    }
    execs.sort();
    execs.dedup();
    let worker_execs: Vec<_> = execs.iter().filter(|x| !fixture_execs.contains(x)).collect();
    assert!(worker_execs.len() > 10, "{worker_execs:?}");
    for exec in worker_execs {
        let answer = raw_get(w, &format!("/exec/{exec}/json"));
        assert!(!answer.contains("T0k"), "in exec {exec}: {answer}");
    }
    let tmp = w.ok("container.exec", sh("ls -a /tmp")).await;
    assert!(!tmp["stdout"].as_str().unwrap().contains(".cropscode"), "scratch left behind: {tmp}");
    let grep = json!({"containerId": id, "command": ["grep", "-rlF", "-f", "-", "/w/http"], "stdin": TOKEN});
    assert_eq!(w.ok("container.exec", grep).await["stdout"], "", "in the clone");
    let logged = logs.lock().unwrap().clone();
    assert!(logged.contains("cloned repository"), "logs were not captured: {logged}");
    assert!(!logged.contains("T0k"), "in the logs");
});

/// `GET path` on the test engine's socket, the whole answer as text.
fn raw_get(w: &WorkerTest, path: &str) -> String {
    let mut stream = UnixStream::connect(common::socket(w.t.which)).expect("engine socket");
    write!(stream, "GET /v1.41{path} HTTP/1.0\r\nHost: engine\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
}
