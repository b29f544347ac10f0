//! Background execs: output (stdout and stderr, marked) is captured from any
//! offset while the command runs; `kill` ends it and its children and says
//! which signal did; a normal exit reports its code; another tenant cannot see
//! it; and after the worker restarts, capture still answers from the spool —
//! for a command that ended and for one still running, which `kill` still reaches —
//! and what a command wrote while the worker was away is captured too: all of
//! it, or, beyond what the container keeps (8 MiB a stream), the newest part,
//! the rest reported lost with exact offsets. Nothing of the relay is left behind.

mod streams;

use std::time::{Duration, Instant};

use cropscode_engine_api::{ExecLimits, ExecSpec};
use cropscode_tests::*;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn capture(t: &EngineRun, exec_id: &str, offset: u64) -> Value {
    streams::ok(
        &t.orchestrator,
        &t.worker_id,
        "container.exec.background.capture",
        json!({ "execId": exec_id, "offset": offset }),
    )
}

/// The captured text from `offset` on, as `stream:data` pieces.
fn pieces(result: &Value) -> Vec<(String, String)> {
    result["chunks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| (c["stream"].as_str().unwrap_or("").to_string(), c["data"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn text(result: &Value) -> String {
    pieces(result).into_iter().map(|(_, data)| data).collect()
}

/// Captures from 0 until `done`; panics with the last capture after a while.
fn capture_until(t: &EngineRun, exec_id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let result = capture(t, exec_id, 0);
        if done(&result) {
            return result;
        }
        assert!(Instant::now() < deadline, "waited for {what}; last capture: {result}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn direct_ps(t: &EngineRun, id: &str) -> String {
    let spec = ExecSpec { cmd: vec!["ps".into(), "-o".into(), "pid,args".into()], ..ExecSpec::default() };
    let out = block_on(t.client.exec(id, &spec, ExecLimits::default())).expect("ps in the container");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start(t: &EngineRun, id: &str, tenant: &str, script: &str) -> String {
    let started = streams::ok(
        &t.orchestrator,
        &t.worker_id,
        "container.exec.background",
        json!({ "containerId": id, "tenant": tenant, "command": ["sh", "-c", script] }),
    );
    assert_eq!((&started["containerId"], &started["restartSafe"]), (&json!(id), &json!(true)), "{started}");
    started["execId"].as_str().expect("execId").to_string()
}

/// How many relay directories the container holds (`None` when it cannot run anything).
fn direct_relays(t: &EngineRun, id: &str) -> Option<usize> {
    let spec = ExecSpec {
        cmd: vec!["sh".into(), "-c".into(), "ls -a /tmp | grep -c '^[.]cropscode-'".into()],
        ..ExecSpec::default()
    };
    let out = block_on(t.client.exec(id, &spec, ExecLimits::default())).ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Runs a shell command in the container directly on the engine.
fn direct_sh(t: &EngineRun, id: &str, script: &str) -> String {
    let spec = ExecSpec { cmd: vec!["sh".into(), "-c".into(), script.into()], ..ExecSpec::default() };
    let out = block_on(t.client.exec(id, &spec, ExecLimits::default())).expect("sh in the container");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn background(t: &mut EngineRun) {
    let tenant = t.tenant("bg");
    let id = t.create_running("bg", &tenant);

    // Output while it runs, both streams marked.
    let ticker = start(
        t,
        &id,
        &tenant,
        "echo out-1; echo err-1 >&2; i=0; while true; do echo tick-$i; i=$((i+1)); usleep 50000; done",
    );
    // (Each stream is copied on its own: wait for both.)
    let first = capture_until(t, &ticker, "some ticks", |r| text(r).contains("tick-5") && text(r).contains("err-1"));
    assert_eq!(first["running"], true, "{first}");
    assert_eq!((first["offset"].as_u64(), first["lostBytes"].as_u64()), (Some(0), Some(0)));
    let got = pieces(&first);
    assert!(got.contains(&("stderr".into(), "err-1\n".into())), "{got:?}");
    assert!(got.iter().any(|(s, d)| s == "stdout" && d.starts_with("out-1\n")), "{got:?}");
    assert!(first.get("exitCode").is_none(), "{first}");

    // From an offset: exactly the bytes after it; maxBytes bounds an answer.
    let next = first["nextOffset"].as_u64().expect("nextOffset");
    assert_eq!(next as usize, text(&first).len());
    std::thread::sleep(Duration::from_millis(300));
    let later = capture(t, &ticker, next);
    assert_eq!(later["offset"].as_u64(), Some(next));
    assert!(text(&later).starts_with("tick-"), "{later}");
    let head = streams::ok(
        &t.orchestrator,
        &t.worker_id,
        "container.exec.background.capture",
        json!({ "execId": ticker, "maxBytes": 3 }),
    );
    // stdout and stderr are separate pipes: which line the spool got first may vary,
    // but the first three bytes are those of the capture from offset 0.
    assert_eq!((text(&head).as_str(), head["nextOffset"].as_u64()), (&text(&first)[..3], Some(3)));
    let beyond = streams::fails(
        &t.orchestrator,
        &t.worker_id,
        "container.exec.background.capture",
        json!({ "execId": ticker, "offset": 1u64 << 40 }),
    );
    assert_eq!(beyond.0, "invalid_request", "{beyond:?}");

    // Another tenant, or no such exec: not found.
    let other = json!({ "execId": ticker, "tenant": t.tenant("other") });
    assert_eq!(
        streams::fails(&t.orchestrator, &t.worker_id, "container.exec.background.capture", other).0,
        "not_found"
    );
    let unknown = json!({ "execId": "x-0-404" });
    assert_eq!(streams::fails(&t.orchestrator, &t.worker_id, "container.exec.background.kill", unknown).0, "not_found");

    // Kill: TERM ends it; the answer says so; its output is complete afterwards.
    let killed = streams::ok(
        &t.orchestrator,
        &t.worker_id,
        "container.exec.background.kill",
        json!({ "execId": ticker, "tenant": tenant }),
    );
    assert_eq!(killed, json!({ "execId": ticker, "alreadyExited": false, "signal": "TERM" }));
    let after = capture(t, &ticker, 0);
    assert_eq!(after["running"], false, "{after}");
    assert!(after.get("exitCode").is_none(), "killed by a signal: no exit code: {after}");
    let total = after["nextOffset"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(capture(t, &ticker, total)["nextOffset"].as_u64(), Some(total), "nothing after the end");
    let again =
        streams::ok(&t.orchestrator, &t.worker_id, "container.exec.background.kill", json!({ "execId": ticker }));
    assert_eq!(again["alreadyExited"], true, "{again}");

    // Children go too; a signal the command ignores is followed by KILL after graceMs.
    let parent = start(t, &id, &tenant, "trap '' TERM; sleep 1001 & sleep 1002 & echo started; wait");
    capture_until(t, &parent, "the children", |r| text(r).contains("started"));
    assert!(direct_ps(t, &id).contains("sleep 1001"));
    let params = json!({ "execId": parent, "signal": "SIGTERM", "graceMs": 500 });
    let killed = streams::ok(&t.orchestrator, &t.worker_id, "container.exec.background.kill", params);
    assert_eq!(killed["alreadyExited"], false, "{killed}");
    assert!(killed["signal"] == "KILL" || killed["signal"] == "TERM", "{killed}");
    let ps = direct_ps(t, &id);
    assert!(!ps.contains("sleep 100"), "children still run:\n{ps}");

    // A normal exit reports its code.
    let quick = start(t, &id, &tenant, "echo done; exit 7");
    let ended = capture_until(t, &quick, "the exit", |r| r["running"] == false);
    assert_eq!((ended["exitCode"].as_i64(), text(&ended).as_str()), (Some(7), "done\n"), "{ended}");

    // Where the relay cannot run (here: /tmp is a read-only volume),
    // the command runs attached: captured while this worker runs, and said so.
    let read_only = t.ok(
        "container.create",
        json!({
            "image": BUSYBOX, "tenant": tenant, "name": t.name("bg-ro"), "command": ["sleep", "3600"],
            "labels": t.labels(), "pull": "never",
            "mounts": [{"type": "volume", "source": t.name("bg-ro"), "target": "/tmp", "readOnly": true}],
        }),
    )["containerId"]
        .as_str()
        .unwrap()
        .to_string();
    t.ok("container.start", json!({ "containerId": read_only, "tenant": tenant }));
    let started = t.ok(
        "container.exec.background",
        json!({ "containerId": read_only, "tenant": tenant, "command": ["sh", "-c", "echo ro-out; echo ro-err >&2; exit 4"] }),
    );
    assert_eq!(started["restartSafe"], false, "{started}");
    let attached = started["execId"].as_str().unwrap().to_string();
    let ended = capture_until(t, &attached, "the attached command's end", |r| r["running"] == false);
    let mut got = pieces(&ended);
    got.sort();
    assert_eq!(ended["exitCode"], 4, "{ended}");
    assert_eq!(got, [("stderr".into(), "ro-err\n".into()), ("stdout".into(), "ro-out\n".into())]);

    // One more, still running when the worker restarts, writing while it is away and after;
    // and one writing more while it is away than a container keeps.
    let survivor = start(
        t,
        &id,
        &tenant,
        "echo before-restart; while [ ! -e /tmp/away ]; do usleep 20000; done; echo while-away; \
         while [ ! -e /tmp/back ]; do usleep 20000; done; echo after-restart >&2; exec sleep 1003",
    );
    let flood = start(
        t,
        &id,
        &tenant,
        "while [ ! -e /tmp/away ]; do usleep 20000; done; seq 1 3000000; echo flood-done; touch /tmp/flooded",
    );
    capture_until(t, &survivor, "its first line", |r| text(r).contains("before-restart"));
    let ticker_bytes = capture(t, &ticker, 0);

    // The worker stops; meanwhile the commands write, one of them 22888896 bytes.
    let home = t.worker.home().to_path_buf();
    t.worker.stop().expect("the worker stops");
    direct_sh(t, &id, "touch /tmp/away");
    let deadline = Instant::now() + WAIT;
    while direct_sh(t, &id, "ls /tmp/flooded 2>/dev/null").is_empty() {
        assert!(Instant::now() < deadline, "the flood did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The container keeps at most 8 MiB of a stream (4 segments of 2 MiB).
    let kept: u64 = direct_sh(t, &id, &format!("du -sk /tmp/.cropscode-{flood}"))
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(kept <= 8 * 1024 + 64, "the relay keeps {kept} KiB");

    // The worker restarts on the same data directory.
    let connection = t.registration.connection;
    let spec = WorkerSpec::for_engine(t.orchestrator.ws_url(), &t.engines, t.which).worker_id(&t.worker_id).home(&home);
    // The old process owns the home directory: keep it until the end of the test.
    let _old = std::mem::replace(&mut t.worker, spec.spawn());
    wait_registered(&t.orchestrator, Some(connection), WAIT).expect("the restarted worker registers");

    let replayed = capture(t, &ticker, 0);
    assert_eq!(replayed["chunks"], ticker_bytes["chunks"], "the same bytes after the restart");
    assert_eq!(replayed["running"], false);
    let ended = capture(t, &quick, 0);
    assert_eq!((ended["exitCode"].as_i64(), ended["running"].as_bool()), (Some(7), Some(false)), "{ended}");
    let running =
        capture_until(t, &survivor, "what it wrote while the worker was away", |r| text(r).contains("while-away"));
    assert_eq!(
        (running["running"].as_bool(), text(&running).as_str()),
        (Some(true), "before-restart\nwhile-away\n"),
        "{running}"
    );
    direct_sh(t, &id, "touch /tmp/back");
    let after = capture_until(t, &survivor, "what it wrote after the restart", |r| text(r).contains("after-restart"));
    assert_eq!(
        pieces(&after),
        [("stdout".into(), "before-restart\nwhile-away\n".into()), ("stderr".into(), "after-restart\n".into())],
        "{after}"
    );

    // The flood: the newest output is there, the rest reported lost, offsets exact.
    let ended = capture_until(t, &flood, "the flood's end", |r| r["running"] == false);
    assert_eq!(ended["exitCode"], 0, "{ended}");
    let first = &ended;
    let lost = first["lostBytes"].as_u64().unwrap();
    assert!(lost > 22_888_896 - 8 * 1024 * 1024 - 2 * 2 * 1024 * 1024, "only {lost} bytes lost: {}", first["offset"]);
    let mut next = first["offset"].as_u64().unwrap();
    assert_eq!(next, lost, "a capture from 0 starts after the lost bytes");
    let mut stdout = Vec::new();
    loop {
        let part = streams::ok(
            &t.orchestrator,
            &t.worker_id,
            "container.exec.background.capture",
            json!({ "execId": flood, "offset": next, "maxBytes": 4194304 }),
        );
        assert_eq!(part["lostBytes"], 0, "nothing lost within what is kept: {}", part["offset"]);
        for (stream, data) in pieces(&part) {
            assert_eq!(stream, "stdout");
            stdout.extend_from_slice(data.as_bytes());
        }
        if part["nextOffset"].as_u64() == Some(next) {
            break;
        }
        next = part["nextOffset"].as_u64().unwrap();
    }
    assert_eq!(next, 22_888_896 + "flood-done\n".len() as u64, "every byte counted");
    let mut expected: String = (1..=3_000_000).map(|n| format!("{n}\n")).collect();
    expected.push_str("flood-done\n");
    assert!(expected.as_bytes().ends_with(&stdout), "the kept stdout is the newest output");
    assert_eq!(stdout.len() as u64 + lost, expected.len() as u64);
    // One relay reader follows the survivor: the old worker's (which outlived it) was ended.
    let ps = direct_ps(t, &id);
    assert_eq!(ps.lines().filter(|l| l.contains("max=$4")).count(), 1, "relay readers:\n{ps}");
    let killed = streams::ok(
        &t.orchestrator,
        &t.worker_id,
        "container.exec.background.kill",
        json!({ "execId": survivor, "signal": "KILL" }),
    );
    assert_eq!(killed, json!({ "execId": survivor, "alreadyExited": false, "signal": "KILL" }));
    assert!(!direct_ps(t, &id).contains("sleep 1003"));
    assert_eq!(capture(t, &survivor, 0)["running"], false);
    // The container restarts under a running command: the command and its relay die with
    // it, the relay's files stay; the capture ends with what was written before.
    let doomed = start(t, &id, &tenant, "echo before-stop; exec sleep 1004");
    capture_until(t, &doomed, "its line", |r| text(r).contains("before-stop"));
    block_on(t.client.stop_container(&id, Some(Duration::from_secs(1)))).expect("stop");
    block_on(t.client.start_container(&id)).expect("start");
    let ended =
        capture_until(t, &doomed, "the end of a command its container's restart ended", |r| r["running"] == false);
    assert_eq!(text(&ended), "before-stop\n", "{ended}");

    // Stopped for longer than a follow waits for it: the relay stays in the container until
    // it starts again, then it is taken (on the engine's start event) and removed.
    let parked = start(t, &id, &tenant, "echo before-park; exec sleep 1005");
    capture_until(t, &parked, "its line", |r| text(r).contains("before-park"));
    block_on(t.client.stop_container(&id, Some(Duration::from_secs(1)))).expect("stop");
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(direct_relays(t, &id), None, "no exec in a stopped container");
    block_on(t.client.start_container(&id)).expect("start");
    let deadline = Instant::now() + WAIT;
    while direct_relays(t, &id) != Some(0) {
        assert!(Instant::now() < deadline, "the relay left in the container is not taken after it started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ended = capture(t, &parked, 0);
    assert_eq!((text(&ended).as_str(), &ended["running"]), ("before-park\n", &json!(false)), "{ended}");

    // Nothing of the relays is left: no directory, no process.
    assert_eq!(direct_relays(t, &id), Some(0), "a relay's directory is left");
    // (A relay's last step, after it closed its stream, may still be ending.)
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ps = direct_ps(t, &id);
        if !ps.contains(".cropscode-") {
            break;
        }
        assert!(Instant::now() < deadline, "a relay's process is left:\n{ps}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn docker() {
    let mut run = EngineRun::start(EngineName::Docker, "background");
    background(&mut run);
}

#[test]
fn podman() {
    let mut run = EngineRun::start(EngineName::Podman, "background");
    background(&mut run);
}
