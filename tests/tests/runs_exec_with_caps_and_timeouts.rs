//! `container.exec` runs an argument vector (never through a shell) to completion and
//! answers its exit code, stdout and stderr apart, each capped at `maxOutputBytes` with
//! `truncated` saying so; `env`, `workingDir`, `user` and `stdin` apply; `base64` output
//! is byte-exact and `utf8` output replaces invalid bytes; a missing program is exit code
//! 126 or 127; a command that outlives `timeoutMs` is answered `timeout` promptly and
//! killed; a stopped container is `conflict`.

use std::time::{Duration, Instant};

use cropscode_tests::*;
use serde_json::{Value, json};

fn exec(t: &EngineRun, id: &str, params: Value) -> Value {
    let mut full = json!({ "containerId": id });
    if let (Some(p), Some(extra)) = (full.as_object_mut(), params.as_object()) {
        p.extend(extra.clone());
    }
    t.ok("container.exec", full)
}

fn exec_behaviour(t: &EngineRun) {
    let tenant = t.tenant("acme");
    let id = t.create_running("exec", &tenant);

    // Exit code and the two streams apart.
    let out = exec(t, &id, json!({ "tenant": tenant, "command": ["sh", "-c", "echo out; echo err >&2; exit 3"] }));
    assert_eq!(out["exitCode"], 3, "{out}");
    assert_eq!(out["stdout"], "out\n", "{out}");
    assert_eq!(out["stderr"], "err\n", "{out}");
    assert_eq!(out["truncated"], false, "{out}");
    assert_eq!(out["encoding"], "utf8", "{out}");

    // An argument vector reaches the program as is: no shell expands it.
    let out = exec(t, &id, json!({ "command": ["echo", "$HOME; ls *", "'quoted'"] }));
    assert_eq!(out["stdout"], "$HOME; ls * 'quoted'\n", "{out}");

    // Environment, working directory and user.
    let out = exec(
        t,
        &id,
        json!({
            "command": ["sh", "-c", "echo \"$FOO\"; pwd; id -u"],
            "env": {"FOO": "bar baz"},
            "workingDir": "/home/user",
            "user": "1000",
        }),
    );
    assert_eq!(out["stdout"], "bar baz\n/home/user\n1000\n", "{out}");
    let out = exec(t, &id, json!({ "command": ["id", "-un"], "user": "user" }));
    assert_eq!(out["stdout"], "user\n", "{out}");

    // stdin is written, then closed.
    let out = exec(t, &id, json!({ "command": ["cat"], "stdin": "line one\nline two\n" }));
    assert_eq!(out["stdout"], "line one\nline two\n", "{out}");
    assert_eq!(out["exitCode"], 0, "{out}");

    // Caps apply to each stream; `truncated` says bytes were dropped.
    let noisy = ["sh", "-c", "yes 0123456789 | head -c 100000; yes abc | head -c 5000 >&2"];
    let out = exec(t, &id, json!({ "command": noisy, "maxOutputBytes": 1000 }));
    let stdout = out["stdout"].as_str().expect("stdout");
    let stderr = out["stderr"].as_str().expect("stderr");
    assert_eq!(stdout.len(), 1000, "stdout capped at 1000 bytes");
    assert_eq!(stderr.len(), 1000, "stderr capped at 1000 bytes");
    assert!(stdout.starts_with("0123456789\n0123456789\n"), "the first bytes are kept: {stdout:.40}");
    assert!(stderr.starts_with("abc\nabc\n"), "the first bytes are kept: {stderr:.40}");
    assert_eq!(out["truncated"], true);
    assert_eq!(out["exitCode"], 0);

    let out = exec(t, &id, json!({ "command": noisy, "maxOutputBytes": 200000 }));
    assert_eq!(out["stdout"].as_str().map(str::len), Some(100000));
    assert_eq!(out["stderr"].as_str().map(str::len), Some(5000));
    assert_eq!(out["truncated"], false);

    let out = exec(t, &id, json!({ "command": ["echo", "dropped"], "maxOutputBytes": 0 }));
    assert_eq!((&out["stdout"], &out["stderr"], &out["truncated"]), (&json!(""), &json!(""), &json!(true)), "{out}");

    // The default cap (1 MiB per stream) on output beyond it: the answer is over the 1 MiB
    // frame size the orchestrator sends, which is fine for results.
    let out = exec(t, &id, json!({ "command": ["sh", "-c", "yes 0123456789abcdef | head -c 1500000"] }));
    assert_eq!(out["stdout"].as_str().map(str::len), Some(1_048_576), "default cap is 1 MiB");
    assert_eq!(out["truncated"], true);

    // Exact bytes in base64; invalid UTF-8 replaced in utf8.
    let bytes = ["sh", "-c", r"printf '\000\377\200abc'; printf '\001' >&2"];
    let out = exec(t, &id, json!({ "command": bytes, "outputEncoding": "base64" }));
    assert_eq!(out["encoding"], "base64", "{out}");
    assert_eq!(base64_decode(out["stdout"].as_str().expect("stdout")), b"\x00\xff\x80abc");
    assert_eq!(base64_decode(out["stderr"].as_str().expect("stderr")), b"\x01");
    let out = exec(t, &id, json!({ "command": ["sh", "-c", r"printf '\377ok'"] }));
    assert_eq!(out["stdout"], "\u{FFFD}ok", "{out}");

    // durationMs is the wall time.
    let out = exec(t, &id, json!({ "command": ["sleep", "0.3"] }));
    let ms = out["durationMs"].as_u64().expect("durationMs");
    assert!((300..10_000).contains(&ms), "durationMs {ms} for sleep 0.3");

    // A command that outlives its timeout: `timeout`, promptly, and the process is killed,
    // its children too.
    let started = Instant::now();
    let err = t.fails_with(
        "timeout",
        "container.exec",
        json!({ "containerId": id, "command": ["sh", "-c", "sleep 988 & sleep 987"], "timeoutMs": 1000 }),
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(6), "timeout answered after {took:?}: {}", err.message);
    assert!(err.message.contains("killed"), "the message says the command was killed: {}", err.message);
    let mut left = String::new();
    for _ in 0..50 {
        let ps = exec(t, &id, json!({ "command": ["ps", "-o", "args"] }));
        left = ps["stdout"].as_str().unwrap_or_default().to_string();
        if !left.contains("sleep 987") && !left.contains("sleep 988") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!left.contains("sleep 98"), "the timed-out command or its child still runs in the container:\n{left}");

    // A program that is not there: a normal result with the engine's exit code.
    let missing = exec(t, &id, json!({ "command": ["/no/such/program"] }));
    let code = missing["exitCode"].as_i64().expect("exitCode");
    assert!(code == 126 || code == 127, "exit code of a missing program: {missing}");

    // A stopped container cannot run anything.
    t.ok("container.stop", json!({ "containerId": id, "graceMs": 1000 }));
    t.fails_with("conflict", "container.exec", json!({ "containerId": id, "command": ["true"] }));
}

engine_tests!(exec_behaviour);
