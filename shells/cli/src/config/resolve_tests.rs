use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

/// A fresh HOME with an optional `config.json`, and an environment that
/// points at it (no system `agent.yaml`).
struct Home {
    dir: PathBuf,
}

impl Home {
    fn new(name: &str) -> Home {
        let dir = std::env::temp_dir().join(format!("cropscode-resolve-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join(".cropscode")).unwrap();
        Home { dir }
    }

    fn preferences(&self, json: &str) -> &Home {
        fs::write(self.dir.join(".cropscode/config.json"), json).unwrap();
        self
    }

    fn env(&self, pairs: &[(&str, &str)]) -> Env {
        let home = self.dir.to_str().unwrap();
        let all = pairs.iter().copied().chain([("HOME", home)]);
        Env::from_pairs(all, self.dir.join("no-such-agent.yaml"))
    }
}

fn flags(pairs: &[(Key, &str)]) -> Flags {
    let mut flags = Flags::default();
    for (key, value) in pairs {
        flags.set(*key, Some(&value.to_string()));
    }
    flags
}

#[test]
fn defaults_without_any_layer() {
    let home = Home::new("defaults");
    let config = resolve(&Flags::default(), &home.env(&[])).unwrap();
    assert_eq!(config.mode.value, Mode::Byom);
    assert_eq!(config.mode.source, Source::Default);
    assert_eq!(config.heartbeat_interval.value, Duration::from_secs(10));
    assert_eq!(config.backoff_max.value, Duration::from_secs(30));
    assert_eq!(config.security_floor.value, SecurityFloor::Baseline);
    assert!(config.orchestrator_url.is_none() && config.token.is_none() && config.worker_name.is_none());
    assert_eq!(config.paths.worker_state, home.dir.join(".cropscode/worker.json"));
    if cfg!(target_os = "linux") {
        assert_eq!(config.data_dir.value, home.dir.join(".local/share/cropscode"));
    }
}

#[test]
fn flag_beats_environment_beats_file_beats_default() {
    let home = Home::new("precedence");
    home.preferences(r#"{"WORKER_NAME": "from-file", "HEARTBEAT_INTERVAL": "3s", "BACKOFF_MAX": "20s"}"#);
    let env = home.env(&[("WORKER_NAME", "from-env"), ("HEARTBEAT_INTERVAL", "4s")]);
    let config = resolve(&flags(&[(Key::WorkerName, "from-flag")]), &env).unwrap();

    let name = config.worker_name.unwrap();
    assert_eq!((name.value.as_str(), name.source), ("from-flag", Source::Flag("--name")));
    assert_eq!(config.heartbeat_interval.value, Duration::from_secs(4));
    assert_eq!(config.heartbeat_interval.source, Source::Env);
    assert_eq!(config.backoff_max.value, Duration::from_secs(20));
    assert_eq!(config.backoff_max.source, Source::File(home.dir.join(".cropscode/config.json")));
    assert_eq!(config.liveness_timeout.source, Source::Default);
}

#[test]
fn bad_values_name_the_key_and_the_source() {
    let home = Home::new("bad");
    let err = resolve(&Flags::default(), &home.env(&[("LIVENESS_TIMEOUT", "abc")])).unwrap_err();
    assert_eq!(err.to_string(), "LIVENESS_TIMEOUT (environment): expected a duration like 45s, got 'abc'");

    let err = resolve(&flags(&[(Key::BackoffJitter, "2")]), &home.env(&[])).unwrap_err();
    assert!(err.to_string().starts_with("BACKOFF_JITTER (flag --backoff-jitter): "), "{err}");

    home.preferences(r#"{"LOG_FORMAT": "xml"}"#);
    let err = resolve(&Flags::default(), &home.env(&[])).unwrap_err().to_string();
    assert!(err.starts_with("LOG_FORMAT (file ") && err.contains("config.json): expected text or json"), "{err}");

    home.preferences(r#"{"WORKER_NMAE": "x"}"#);
    let err = resolve(&Flags::default(), &home.env(&[])).unwrap_err().to_string();
    assert!(err.contains("unknown key 'WORKER_NMAE'"), "{err}");

    home.preferences(r#"{"HEARTBEAT_INTERVAL": "0s"}"#);
    assert!(resolve(&Flags::default(), &home.env(&[])).is_err());
}

#[test]
fn insecure_urls_are_refused_with_a_hint() {
    let home = Home::new("url");
    let err = resolve(&flags(&[(Key::OrchestratorWsUrl, "ws://example.com/worker")]), &home.env(&[])).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("ORCHESTRATOR_WS_URL (flag --url): ") && text.contains("wss://"), "{text}");
    let ok = resolve(&flags(&[(Key::OrchestratorWsUrl, "ws://127.0.0.1:9/w")]), &home.env(&[])).unwrap();
    assert_eq!(ok.orchestrator_url.unwrap().value, "ws://127.0.0.1:9/w");
}

#[test]
fn token_comes_from_credentials_and_never_from_config_json() {
    let home = Home::new("token");
    let path = home.dir.join(".cropscode/credentials.json");
    let creds = files::Credentials {
        token: Some(Secret::new("tok-from-file")),
        orchestrator_url: Some("wss://orch.example/w".into()),
    };
    files::write_credentials(&path, &creds).unwrap();
    home.preferences(r#"{"ORCHESTRATOR_WS_URL": "wss://other.example/w"}"#);
    let config = resolve(&Flags::default(), &home.env(&[])).unwrap();
    let token = config.token.unwrap();
    assert_eq!((token.value.expose(), &token.source), ("tok-from-file", &Source::File(path.clone())));
    // The URL stays paired with the token it was stored with.
    assert_eq!(config.orchestrator_url.unwrap().value, "wss://orch.example/w");

    let config = resolve(&Flags::default(), &home.env(&[("WORKER_TOKEN", "tok-env")])).unwrap();
    assert_eq!(config.token.unwrap().source, Source::Env);

    home.preferences(r#"{"WORKER_TOKEN": "tok-in-prefs"}"#);
    let err = resolve(&Flags::default(), &home.env(&[])).unwrap_err().to_string();
    assert!(err.contains("credentials.json") && !err.contains("tok-in-prefs"), "{err}");
}

#[test]
fn agent_yaml_means_fleet_and_its_keys_are_lower_case() {
    let home = Home::new("fleet");
    let yaml = home.dir.join("agent.yaml");
    fs::write(&yaml, "orchestrator_ws_url: wss://fleet.example/w\nworker_token: t0k\nheartbeat_interval: 5s\n")
        .unwrap();
    let env = home.env(&[("AGENT_CONFIG", yaml.to_str().unwrap())]);
    let config = resolve(&Flags::default(), &env).unwrap();
    assert_eq!(config.mode.value, Mode::Fleet);
    assert_eq!(config.heartbeat_interval.source, Source::File(yaml.clone()));
    assert_eq!(config.token.unwrap().key, "worker_token");
    assert!(config.paths.credentials.is_none());
    assert_eq!(config.paths.worker_state, config.data_dir.value.join("worker.json"));
    if cfg!(target_os = "linux") {
        assert_eq!(config.data_dir.value, PathBuf::from("/var/lib/cropscode"));
    }

    // The same file found at the system path, with no AGENT_CONFIG.
    let env = Env::from_pairs([("HOME", home.dir.to_str().unwrap())], yaml.clone());
    assert_eq!(resolve(&Flags::default(), &env).unwrap().mode.value, Mode::Fleet);
    // An explicit byom ignores the system file…
    let byom = resolve(&flags(&[(Key::AgentMode, "byom")]), &env).unwrap();
    assert_eq!(byom.mode.value, Mode::Byom);
    assert!(byom.agent_config.is_none());
    // …but contradicts an explicit AGENT_CONFIG.
    let env = home.env(&[("AGENT_CONFIG", yaml.to_str().unwrap()), ("AGENT_MODE", "byom")]);
    assert!(resolve(&Flags::default(), &env).unwrap_err().to_string().starts_with("AGENT_CONFIG (environment)"));
}

#[test]
fn unknown_yaml_key_names_key_and_file() {
    let home = Home::new("yamltypo");
    let yaml = home.dir.join("agent.yaml");
    fs::write(&yaml, "hearbeat_interval: 5s\n").unwrap();
    let err = resolve(&flags(&[(Key::AgentConfig, yaml.to_str().unwrap())]), &home.env(&[])).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("hearbeat_interval") && text.contains(yaml.to_str().unwrap()), "{text}");

    let missing = home.dir.join("missing.yaml");
    let err = resolve(&flags(&[(Key::AgentConfig, missing.to_str().unwrap())]), &home.env(&[])).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
}

#[test]
fn empty_environment_values_count_as_unset() {
    let home = Home::new("empty");
    home.preferences(r#"{"WORKER_NAME": "from-file"}"#);
    let config = resolve(&Flags::default(), &home.env(&[("WORKER_NAME", "")])).unwrap();
    assert_eq!(config.worker_name.unwrap().value, "from-file");
}

#[test]
fn xdg_data_home_moves_the_byom_data_dir_on_linux() {
    let home = Home::new("xdg");
    let xdg = home.dir.join("xdg");
    let config = resolve(&Flags::default(), &home.env(&[("XDG_DATA_HOME", xdg.to_str().unwrap())])).unwrap();
    if cfg!(target_os = "linux") {
        assert_eq!(config.data_dir.value, xdg.join("cropscode"));
    }
}

#[test]
fn gateway_keys_resolve_and_a_bad_url_names_its_key() {
    let home = Home::new("gateway");
    let config = resolve(&Flags::default(), &home.env(&[])).unwrap();
    assert!(config.gateway_url.is_none());
    assert_eq!(config.gateway_probe_interval.value, Duration::from_secs(30));
    assert_eq!(config.gateway_timeout.value, Duration::from_secs(5));

    home.preferences(r#"{"GATEWAY_URL": "tcp://db.internal:5432", "GATEWAY_TIMEOUT": "2s"}"#);
    let env = home.env(&[("GATEWAY_URL", "https://probe:pw@gw.example/health?key=k")]);
    let config = resolve(&flags(&[(Key::GatewayProbeInterval, "1m")]), &env).unwrap();
    let gateway = config.gateway_url.unwrap();
    assert_eq!((gateway.value.to_string().as_str(), &gateway.source), ("https://gw.example/health", &Source::Env));
    assert_eq!(config.gateway_probe_interval.value, Duration::from_secs(60));
    assert_eq!(config.gateway_timeout.value, Duration::from_secs(2));

    let error = resolve(&flags(&[(Key::GatewayUrl, "ftp://u:pw@gw.example/")]), &env).unwrap_err();
    assert_eq!(error.subject, "GATEWAY_URL (flag --gateway-url)");
    assert!(error.message.contains("unsupported scheme") && !error.message.contains("pw"), "{error}");
    let error = resolve(&flags(&[(Key::GatewayTimeout, "0s")]), &env).unwrap_err();
    assert_eq!(error.subject, "GATEWAY_TIMEOUT (flag --gateway-timeout)");
    let _ = fs::remove_dir_all(&home.dir);
}

#[test]
fn the_health_listener_is_off_by_default_and_loopback_unless_allowed() {
    let home = Home::new("health");
    let config = resolve(&flags(&[]), &home.env(&[])).unwrap();
    assert_eq!((config.health_addr, config.health_allow_remote.value), (None, false));

    let config = resolve(&flags(&[(Key::HealthAddr, "localhost:9464")]), &home.env(&[])).unwrap();
    let addr = config.health_addr.unwrap();
    assert_eq!((addr.value.to_string().as_str(), addr.source), ("127.0.0.1:9464", Source::Flag("--health-addr")));

    let err = resolve(&flags(&[]), &home.env(&[("HEALTH_ADDR", "0.0.0.0:9464")])).unwrap_err();
    assert_eq!(err.subject, "HEALTH_ADDR (environment)");
    assert!(err.message.contains("HEALTH_ALLOW_REMOTE=1"), "{err}");

    home.preferences(r#"{"HEALTH_ALLOW_REMOTE": "1"}"#);
    let config = resolve(&flags(&[]), &home.env(&[("HEALTH_ADDR", "0.0.0.0:9464")])).unwrap();
    assert!(config.health_allow_remote.value);
    assert!(matches!(config.health_allow_remote.source, Source::File(_)));
    let err = resolve(&flags(&[]), &home.env(&[("HEALTH_ADDR", "nine")])).unwrap_err();
    assert!(err.message.contains("127.0.0.1:9464"), "{err}");
    let _ = fs::remove_dir_all(&home.dir);
}

#[test]
fn the_health_keys_come_from_agent_yaml_too() {
    let home = Home::new("health-yaml");
    let yaml = home.dir.join("agent.yaml");
    fs::write(&yaml, "worker_token: t0k\nhealth_addr: \"[::1]:9464\"\nhealth_allow_remote: \"0\"\n").unwrap();
    let config = resolve(&Flags::default(), &home.env(&[("AGENT_CONFIG", yaml.to_str().unwrap())])).unwrap();
    let addr = config.health_addr.unwrap();
    assert_eq!((addr.value.to_string(), addr.key.as_str()), ("[::1]:9464".to_string(), "health_addr"));
    assert_eq!(addr.source, Source::File(yaml.clone()));
    assert!(!config.health_allow_remote.value);
    let _ = fs::remove_dir_all(&home.dir);
}
