//! `cropscode status` shows each resolved value with its source: a flag beats
//! the environment, which beats `~/.cropscode/config.json`, which beats the default.

mod common;
use common::*;

#[test]
fn flag_beats_environment_beats_file_beats_default() {
    let home = Home::new("precedence");
    let prefs = home.write(
        "config.json",
        r#"{"WORKER_NAME": "from-file", "HEARTBEAT_INTERVAL": "3s", "BACKOFF_MAX": "20s", "SECURITY_FLOOR": "restricted"}"#,
    );
    let run = home.run(
        &["status", "--offline", "--name", "from-flag"],
        &[("WORKER_NAME", "from-env"), ("HEARTBEAT_INTERVAL", "4s"), ("LIVENESS_TIMEOUT", "1m")],
    );
    run.assert_ok();

    let name = run.line("WORKER_NAME");
    assert!(name.contains("from-flag") && name.ends_with("(flag --name)"), "{name}");
    let heartbeat = run.line("HEARTBEAT_INTERVAL");
    assert!(heartbeat.contains("4s") && heartbeat.ends_with("(environment)"), "{heartbeat}");
    let liveness = run.line("LIVENESS_TIMEOUT");
    assert!(liveness.contains("1m") && liveness.ends_with("(environment)"), "{liveness}");
    let backoff = run.line("BACKOFF_MAX");
    assert!(backoff.contains("20s") && backoff.ends_with(&format!("(file {})", prefs.display())), "{backoff}");
    let floor = run.line("SECURITY_FLOOR");
    assert!(floor.contains("restricted") && floor.contains("config.json"), "{floor}");
    let register = run.line("REGISTER_TIMEOUT");
    assert!(register.contains("15s") && register.ends_with("(default)"), "{register}");
    let jitter = run.line("BACKOFF_JITTER");
    assert!(jitter.ends_with("(default)"), "{jitter}");
}

#[test]
fn unset_name_defaults_to_the_hostname_and_data_dir_to_the_os_place() {
    let home = Home::new("defaults");
    let run = home.run(&["status", "--offline"], &[]);
    run.assert_ok();
    assert!(run.line("WORKER_NAME").ends_with("(default: the hostname)"), "{}", run.stdout);
    if cfg!(target_os = "linux") {
        let data = run.line("DATA_DIR");
        assert!(data.contains(&home.path(".local/share/cropscode").display().to_string()), "{data}");
    }
    assert!(run.line("WORKER_TOKEN").contains("not set"), "{}", run.stdout);
    assert!(run.line("ORCHESTRATOR_WS_URL").contains("not set"), "{}", run.stdout);
    assert!(run.stdout.contains("Container engines:    CONTAINER_ENGINE=auto"), "{}", run.stdout);
    assert!(run.line("CONTAINER_ENGINE").ends_with("(default)"), "{}", run.stdout);
}

#[test]
fn status_reports_an_unreachable_orchestrator() {
    let home = Home::new("unreachable");
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    let run = home.run(&["status"], &[("ORCHESTRATOR_WS_URL", "ws://127.0.0.1:9/worker"), ("WORKER_TOKEN", TOKEN)]);
    run.assert_ok();
    let line = run.stdout.lines().find(|l| l.starts_with("Orchestrator:")).expect("an Orchestrator line");
    assert!(line.contains("unreachable"), "{line}");
    assert!(!run.all().contains(TOKEN), "the token leaked:\n{}", run.all());
}
