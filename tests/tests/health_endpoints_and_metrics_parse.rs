//! The health listener (`HEALTH_ADDR`): `/healthz` answers 200 while the loop turns,
//! `/readyz` 200 once registered, and `/metrics` is Prometheus text that Python's
//! `prometheus_client` parser reads, with the expected families and a command counted
//! after one command. A non-loopback address is refused without `HEALTH_ALLOW_REMOTE`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use cropscode_tests::*;
use serde_json::json;

/// The families `prometheus_client` parses out of `text`, with each sample, as JSON.
fn parse_with_prometheus_client(text: &str) -> serde_json::Value {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    out[family.name] = {"type": family.type, "samples": [[s.name, s.labels, s.value] for s in family.samples]}
print(json.dumps(out))
"#;
    // Debian's python3, whose prometheus_client tests/env/prepare.sh installs (not a pyenv shim).
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (tests/env/prepare.sh installs python3-prometheus-client)");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write metrics");
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "prometheus_client rejected the metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json from python")
}

#[test]
fn healthz_readyz_and_metrics() {
    let orchestrator = start_orchestrator();
    let worker = WorkerSpec::new(orchestrator.ws_url()).env("HEALTH_ADDR", "127.0.0.1:0").spawn();
    let registered = wait_registered(&orchestrator, None, Duration::from_secs(30)).expect("registered");
    let addr = worker.health_addr(Duration::from_secs(10));
    assert!(addr.ip().is_loopback());

    assert_eq!(http_get(addr, "/healthz"), (200, "ok\n".into()));
    let ready = wait_http_status(addr, "/readyz", 200, Duration::from_secs(15));
    assert!(ready.contains("\"ready\":true"), "{ready}");

    let answer =
        block_on(orchestrator.command(&registered.worker_id, "container.list-all", json!({}), Duration::from_secs(30)))
            .expect("a command");
    let outcome = match answer.frame.outcome() {
        Ok(_) => "ok".to_string(),
        Err(e) => e.code.as_str().to_string(),
    };
    let (status, text) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    let families = parse_with_prometheus_client(&text);
    for family in [
        "cropscode_build_info",
        "cropscode_up",
        "cropscode_connection_state",
        "cropscode_reconnects",
        "cropscode_commands",
        "cropscode_command_duration_seconds",
        "cropscode_commands_running",
        "cropscode_sessions_open",
        "cropscode_stream_bytes",
    ] {
        assert!(families.get(family).is_some(), "no family {family} in {families}");
    }
    let commands = &families["cropscode_commands"];
    assert_eq!(commands["type"], "counter");
    let counted = commands["samples"].as_array().unwrap().iter().find(|s| {
        s[0] == "cropscode_commands_total"
            && s[1]["command"] == "container.list-all"
            && s[1]["outcome"] == outcome.as_str()
    });
    assert_eq!(counted.map(|s| s[2].as_f64()), Some(Some(1.0)), "{commands}");
    let latency = &families["cropscode_command_duration_seconds"];
    assert_eq!(latency["type"], "histogram");
    let count =
        latency["samples"].as_array().unwrap().iter().find(|s| s[0] == "cropscode_command_duration_seconds_count");
    assert_eq!(count.map(|s| s[2].as_f64()), Some(Some(1.0)), "{latency}");
    let state = families["cropscode_connection_state"]["samples"].as_array().unwrap().clone();
    assert!(state.iter().any(|s| s[1]["state"] == "registered" && s[2] == 1.0), "{state:?}");
    let version = &families["cropscode_build_info"]["samples"][0][1]["version"];
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    worker.assert_token_absent();
}

#[test]
fn a_remote_address_needs_the_owners_consent() {
    let mut worker = WorkerSpec::new("ws://127.0.0.1:9/worker").env("HEALTH_ADDR", "0.0.0.0:0").spawn();
    let status = worker.wait_exit(Duration::from_secs(20)).expect("the worker refuses to start");
    assert_eq!(status.code(), Some(2), "{}", worker.logs());
    assert!(worker.logs().contains("HEALTH_ADDR (environment)"), "{}", worker.logs());
    assert!(worker.logs().contains("HEALTH_ALLOW_REMOTE"), "{}", worker.logs());
}
