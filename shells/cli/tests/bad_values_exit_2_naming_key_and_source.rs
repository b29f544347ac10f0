//! A bad configuration value stops the agent at startup with exit code 2 and a
//! message naming the key and where it came from; it never panics.

mod common;
use common::*;

fn assert_config_error(run: &Run, expected: &str) {
    assert_eq!(run.code, Some(2), "exit code 2 expected:\n{}", run.all());
    assert!(run.stderr.contains(expected), "expected `{expected}` in:\n{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn bad_duration_in_the_environment() {
    let home = Home::new("bad-env");
    for command in ["status", "worker"] {
        let run = home.run(&[command], &[("LIVENESS_TIMEOUT", "abc")]);
        assert_config_error(&run, "LIVENESS_TIMEOUT (environment): expected a duration like 45s, got 'abc'");
    }
}

#[test]
fn bad_flag_value() {
    let home = Home::new("bad-flag");
    let run = home.run(&["status", "--offline", "--backoff-jitter", "2"], &[]);
    assert_config_error(&run, "BACKOFF_JITTER (flag --backoff-jitter): expected a number from 0 to 1");
    let run = home.run(&["worker", "--log-format", "xml"], &[]);
    assert_config_error(&run, "LOG_FORMAT (flag --log-format): expected text or json, got 'xml'");
}

#[test]
fn bad_value_in_config_json() {
    let home = Home::new("bad-file");
    let path = home.write("config.json", r#"{"HEARTBEAT_INTERVAL": "often"}"#);
    let run = home.run(&["status", "--offline"], &[]);
    assert_config_error(&run, &format!("HEARTBEAT_INTERVAL (file {}): expected a duration", path.display()));
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let home = Home::new("bad-usage");
    let run = home.run(&["worker", "--token", "x"], &[]);
    assert_eq!(run.code, Some(2), "{}", run.all());
}

#[test]
fn missing_token_or_url_is_explained() {
    let home = Home::new("missing");
    let run = home.run(&["worker"], &[("ORCHESTRATOR_WS_URL", "wss://orchestrator.example/worker")]);
    assert_config_error(&run, "WORKER_TOKEN: not set: run `cropscode login`");
    let run = home.run(&["worker"], &[("WORKER_TOKEN", TOKEN)]);
    assert_config_error(&run, "ORCHESTRATOR_WS_URL: not set");
    assert!(!run.all().contains(TOKEN));
}

#[test]
fn plain_ws_to_a_remote_host_is_refused_at_startup() {
    let home = Home::new("plain-ws");
    let run = home.run(&["worker"], &[("ORCHESTRATOR_WS_URL", "ws://example.com/worker"), ("WORKER_TOKEN", TOKEN)]);
    assert_config_error(&run, "ORCHESTRATOR_WS_URL (environment): ");
    assert!(run.stderr.contains("use wss://"), "{}", run.stderr);
    assert!(!run.all().contains(TOKEN));
    let run = home.run(&["status", "--url", "ws://example.com/worker"], &[]);
    assert_config_error(&run, "ORCHESTRATOR_WS_URL (flag --url): ");
}

#[test]
fn bad_policy_settings() {
    let home = Home::new("bad-policy");
    let run = home.run(&["status", "--offline"], &[("HOST_PORT_RANGE", "9000-80")]);
    assert_config_error(&run, "HOST_PORT_RANGE (environment): expected a port range like 1024-65535, got '9000-80'");
    let run = home.run(&["status", "--offline", "--allowed-bind-roots", "/srv,data"], &[]);
    assert_config_error(&run, "ALLOWED_BIND_ROOTS (flag --allowed-bind-roots): expected absolute paths");
    let run = home.run(&["worker"], &[("TERMINAL_IDLE_TIMEOUT", "forever")]);
    assert_config_error(&run, "TERMINAL_IDLE_TIMEOUT (environment): expected a duration");
}

#[test]
fn policy_settings_are_shown_with_their_sources() {
    let home = Home::new("policy-status");
    let run = home.run(
        &["status", "--offline", "--host-port-range", "8000-8099"],
        &[("ALLOWED_BIND_ROOTS", "/srv/shared,/mnt/data"), ("TERMINAL_IDLE_TIMEOUT", "2m")],
    );
    assert_eq!(run.code, Some(0), "{}", run.all());
    for expected in ["/srv/shared,/mnt/data", "8000-8099", "2m"] {
        assert!(run.stdout.contains(expected), "`{expected}` missing from:\n{}", run.stdout);
    }
    let defaults = home.run(&["status", "--offline"], &[]);
    assert!(defaults.stdout.contains("none (every bind mount refused)"), "{}", defaults.stdout);
    assert!(defaults.stdout.contains("1024-65535"), "{}", defaults.stdout);
}

#[test]
fn bad_gateway_settings_and_a_gateway_shown_without_credentials() {
    let home = Home::new("bad-gateway");
    let run = home.run(&["worker"], &[("GATEWAY_URL", "ftp://probe:pa55@gw.example/")]);
    assert_config_error(&run, "GATEWAY_URL (environment): unsupported scheme `ftp`");
    assert!(!run.all().contains("pa55"), "{}", run.all());
    let run = home.run(&["status", "--offline", "--gateway-url", "tcp://gw.example"], &[]);
    assert_config_error(&run, "GATEWAY_URL (flag --gateway-url): tcp:// needs a port");
    let run = home.run(&["worker"], &[("GATEWAY_PROBE_INTERVAL", "often")]);
    assert_config_error(&run, "GATEWAY_PROBE_INTERVAL (environment): expected a duration");

    let run = home.run(&["status", "--offline"], &[("GATEWAY_URL", "https://probe:pa55@gw.example/health?key=s3cret")]);
    assert!(run.stdout.contains("https://gw.example/health"), "{}", run.stdout);
    assert!(!run.all().contains("pa55") && !run.all().contains("s3cret"), "{}", run.all());
}
