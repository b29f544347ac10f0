//! `container.exec` through the worker: output apart per stream, exit codes, the cap with
//! `truncated`, stdin, base64 output, env/workingDir/user, the timeout (the process is
//! killed), and a stopped container.

mod common;

use std::time::Duration;

use common::worker::WorkerTest;
use cropscode_core::protocol::ErrorCode;
use serde_json::json;

worker_test!(worker_exec, async |w: &WorkerTest| {
    let id = w.running(&w.acme, "exec").await;
    let sh = |script: &str| json!({"containerId": id, "tenant": w.acme, "command": ["sh", "-c", script]});

    let out = w.ok("container.exec", sh("echo out; echo err >&2; exit 3")).await;
    assert_eq!(out["exitCode"], 3, "{out}");
    assert_eq!((out["stdout"].as_str(), out["stderr"].as_str()), (Some("out\n"), Some("err\n")));
    assert_eq!((out["encoding"].as_str(), out["truncated"].as_bool()), (Some("utf8"), Some(false)));
    assert!(out["durationMs"].as_u64().is_some());

    // The cap applies per stream; the exit code is still known.
    let mut capped = sh("head -c 100000 /dev/zero | tr '\\0' a; echo e >&2; exit 7");
    capped["maxOutputBytes"] = json!(10);
    let out = w.ok("container.exec", capped).await;
    assert_eq!((out["stdout"].as_str(), out["stderr"].as_str()), (Some("aaaaaaaaaa"), Some("e\n")), "{out}");
    assert_eq!((out["truncated"].as_bool(), out["exitCode"].as_i64()), (Some(true), Some(7)));

    // stdin is written, then closed.
    let mut with_stdin = json!({"containerId": id, "command": ["sh", "-c", "wc -c; cat"], "stdin": "hello\nworld\n"});
    let out = w.ok("container.exec", with_stdin.clone()).await;
    assert_eq!(out["stdout"].as_str().map(|s| s.split_whitespace().collect::<Vec<_>>()), Some(vec!["12"]), "{out}");
    with_stdin["command"] = json!(["cat"]);
    let out = w.ok("container.exec", with_stdin).await;
    assert_eq!(out["stdout"], "hello\nworld\n");

    // Exact bytes as base64.
    let mut binary = sh("printf '\\377\\000A'");
    binary["outputEncoding"] = json!("base64");
    let out = w.ok("container.exec", binary).await;
    assert_eq!((out["stdout"].as_str(), out["encoding"].as_str()), (Some("/wBB"), Some("base64")), "{out}");

    let out = w
        .ok(
            "container.exec",
            json!({"containerId": "exec", "tenant": w.acme, "command": ["sh", "-c", "echo $GREETING; pwd; id -u"],
                   "env": {"GREETING": "hi there"}, "workingDir": "/home/user", "user": "1000"}),
        )
        .await;
    assert_eq!(out["stdout"], "hi there\n/home/user\n1000\n", "{out}");

    // A program that does not exist: an answer with a failing exit code, not a worker error.
    let out = w.ok("container.exec", json!({"containerId": id, "command": ["/no/such/program"]})).await;
    assert_ne!(out["exitCode"], 0, "{out}");

    // Timeout: answered `timeout` on time, and the process is gone.
    let mut slow = json!({"containerId": id, "command": ["sleep", "31"], "timeoutMs": 500});
    let started = std::time::Instant::now();
    let error = w.fails("container.exec", slow.clone(), ErrorCode::Timeout).await;
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(error.message.contains("500 ms") && error.message.contains("killed"), "{error:?}");
    let ps = w.ok("container.exec", sh("ps -o args | grep -c '^sleep 31' || true")).await;
    assert_eq!(ps["stdout"], "0\n", "the timed-out process still runs: {ps}");
    slow["timeoutMs"] = json!(30_000);
    slow["command"] = json!(["true"]);
    w.ok("container.exec", slow).await;

    // A stopped container cannot exec: conflict.
    w.ok("container.stop", json!({"containerId": id, "graceMs": 1000})).await;
    w.fails("container.exec", json!({"containerId": id, "command": ["true"]}), ErrorCode::Conflict).await;
});
