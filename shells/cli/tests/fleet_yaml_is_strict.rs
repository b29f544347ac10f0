//! Fleet mode reads `agent.yaml` (from `AGENT_CONFIG` here); its keys are the
//! environment names in lower case, and an unknown key is an error naming the
//! key and the file.

mod common;
use common::*;

#[test]
fn unknown_key_in_agent_yaml_is_an_error() {
    let home = Home::new("yaml-typo");
    let yaml = home.path("agent.yaml");
    std::fs::write(&yaml, "orchestrator_ws_url: wss://fleet.example/worker\nhearbeat_interval: 5s\n").unwrap();
    let env = [("AGENT_CONFIG", yaml.to_str().unwrap()), ("AGENT_MODE", "fleet")];
    for command in ["status", "worker"] {
        let run = home.run(&[command], &env);
        assert_eq!(run.code, Some(2), "{}", run.all());
        assert!(run.stderr.contains("hearbeat_interval"), "{}", run.stderr);
        assert!(run.stderr.contains(yaml.to_str().unwrap()), "{}", run.stderr);
    }
}

#[test]
fn agent_yaml_values_show_their_file_and_the_token_stays_hidden() {
    let home = Home::new("yaml");
    let yaml = home.path("agent.yaml");
    let text =
        format!("orchestrator_ws_url: wss://fleet.example/worker\nworker_token: {TOKEN}\nheartbeat_interval: 5s\n");
    std::fs::write(&yaml, text).unwrap();
    let run = home.run(&["status", "--offline"], &[("AGENT_CONFIG", yaml.to_str().unwrap()), ("AGENT_MODE", "fleet")]);
    run.assert_ok();
    assert!(run.line("AGENT_MODE").contains("fleet"), "{}", run.stdout);
    let heartbeat = run.line("HEARTBEAT_INTERVAL");
    assert!(heartbeat.contains("5s") && heartbeat.contains(yaml.to_str().unwrap()), "{heartbeat}");
    let token = run.line("WORKER_TOKEN");
    assert!(token.contains("set") && token.contains("worker_token"), "{token}");
    assert!(!run.all().contains(TOKEN), "the token leaked:\n{}", run.all());
}
