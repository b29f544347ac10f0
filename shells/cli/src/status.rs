//! `cropscode status`: the resolved configuration with the source of every
//! value, the agent's files, whether the orchestrator is reachable, and the
//! detected engines (with the one the worker would use).
//!
//! When a worker runs with the same `DATA_DIR`, its live state comes from
//! `DATA_DIR/worker.sock` (`status_live`): connected since, last heartbeat,
//! commands and sessions, engine health, last error.
//!
//! The reachability check is a real connection: TCP, TLS and the WebSocket
//! upgrade with the token, bounded by five seconds, then a normal close. It
//! tells "ok", "refused the token" and "unreachable" apart. The token itself
//! is shown only as set / not set.

use std::time::Duration;

use cropscode_core::protocol::Mode;
use cropscode_core::{Connector, Frame, Secret, Transport, TransportError};
use cropscode_runtime::{WorkerState, read_worker_state};

use crate::Failure;
use crate::config::parse::show_duration;
use crate::config::{self, Config, Env, Key, Setting};
use crate::flags::config_flags;

/// How long the reachability check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// A stand-in sent when no token is configured: a refusal still proves the
/// orchestrator answers.
const NO_TOKEN: &str = "cropscode-status-without-token";

config_flags! {
    /// show the resolved configuration, the orchestrator's reachability and the engines
    #[argh(subcommand, name = "status")]
    pub struct StatusCommand {
        /// do not try to connect to the orchestrator
        #[argh(switch)]
        pub offline: bool,
    }
}

impl StatusCommand {
    /// Runs the subcommand.
    pub fn run(self) -> Result<(), Failure> {
        let config = config::resolve(&self.config_flags(), &Env::from_process())?;
        let hostname = cropscode_runtime::system_info().hostname;
        let mut out = String::new();
        out.push_str(&format!(
            "cropscode {}\n\nConfiguration (flag > environment > file > default):\n",
            crate::VERSION
        ));
        for row in rows(&config, &hostname) {
            out.push_str(&format!("  {:<21} {}", row.key, row.value));
            if let Some(source) = row.source {
                out.push_str(&format!("  ({source})"));
            }
            out.push('\n');
        }
        out.push_str("\nFiles:\n");
        for (label, path) in [
            ("agent.yaml", config.agent_config.as_ref().map(|s| s.value.clone())),
            ("credentials.json", config.paths.credentials.clone()),
            ("config.json", config.paths.preferences.clone()),
            ("worker.json", Some(config.paths.worker_state.clone())),
        ] {
            let Some(path) = path else { continue };
            let state = if path.exists() { "present" } else { "absent" };
            out.push_str(&format!("  {label:<21} {} ({state})\n", path.display()));
        }
        out.push_str(&format!("\nRegistration:         {}\n", registration(&config)));
        out.push_str(&crate::status_live::describe(&config.data_dir.value));
        print!("{out}");

        let reachability =
            if self.offline { "not checked (--offline)".to_owned() } else { check_orchestrator(&config) };
        println!("Orchestrator:         {reachability}");
        print!("{}", engines(&config));
        Ok(())
    }
}

/// Every engine address the worker would try, what answers there, and which one the
/// worker would use. Starts nothing (the worker may start a Podman service; status does not).
fn engines(config: &Config) -> String {
    let podman_path = config.podman_path.as_ref().map(|s| s.value.as_path());
    let detection = smol::block_on(cropscode_engine::worker::detect(podman_path, Some(&config.data_dir.value)));
    let preference = config.container_engine.value;
    let starts_podman = detection.starts_podman(preference);
    let chosen = if starts_podman { None } else { detection.choose(preference).map(|e| e.endpoint.clone()) };
    let mut out = format!("Container engines:    CONTAINER_ENGINE={preference}\n");
    for engine in &detection.engines {
        let state = match &engine.answer {
            Ok(version) if Some(&engine.endpoint) == chosen.as_ref() => {
                format!("{} {}, serves commands", version.kind, version.version)
            }
            Ok(version) => format!("{} {}", version.kind, version.version),
            Err(error) => format!("not answering: {error}"),
        };
        out.push_str(&format!("  {} ({}): {state}\n", engine.endpoint, engine.source));
    }
    for bad in &detection.rejected {
        out.push_str(&format!("  ${}: ignored: {}\n", bad.variable, bad.message));
    }
    if detection.engines.is_empty() {
        out.push_str("  no engine socket found\n");
    }
    match &detection.podman_binary {
        Some(podman) if starts_podman => out.push_str(&format!(
            "  podman: {}; no Podman socket answers, so the worker starts `podman system service` on {} and uses it\n",
            podman.display(),
            config.data_dir.value.join("podman.sock").display()
        )),
        Some(podman) => out.push_str(&format!("  podman: {}\n", podman.display())),
        None => {}
    }
    if chosen.is_none() && !starts_podman {
        out.push_str("  no engine answers: commands will fail with engine_unavailable\n");
    }
    out
}

struct Row {
    key: &'static str,
    value: String,
    source: Option<String>,
}

fn rows(config: &Config, hostname: &str) -> Vec<Row> {
    fn row<T>(key: Key, setting: &Setting<T>, show: impl Fn(&T) -> String) -> Row {
        let source = if setting.key != key.env() {
            format!("{}, key {}", setting.source, setting.key)
        } else {
            setting.source.to_string()
        };
        Row { key: key.env(), value: show(&setting.value), source: Some(source) }
    }
    fn optional<T>(key: Key, setting: &Option<Setting<T>>, show: impl Fn(&T) -> String) -> Row {
        match setting {
            Some(s) => row(key, s, show),
            None => Row { key: key.env(), value: "not set".into(), source: None },
        }
    }
    let path = |p: &std::path::PathBuf| p.display().to_string();
    let duration = |d: &Duration| show_duration(*d);
    Key::ALL
        .into_iter()
        .map(|key| match key {
            Key::AgentMode => row(key, &config.mode, |m: &Mode| m.as_str().into()),
            Key::AgentConfig => optional(key, &config.agent_config, path),
            Key::OrchestratorWsUrl => optional(key, &config.orchestrator_url, String::clone),
            // The token is never shown, not even in part.
            Key::WorkerToken => optional(key, &config.token, |_: &Secret| "set".into()),
            Key::WorkerName => match &config.worker_name {
                Some(s) => row(key, s, String::clone),
                None => Row { key: key.env(), value: hostname.into(), source: Some("default: the hostname".into()) },
            },
            Key::DataDir => row(key, &config.data_dir, path),
            Key::PodmanPath => optional(key, &config.podman_path, path),
            Key::ContainerEngine => row(key, &config.container_engine, ToString::to_string),
            Key::SecurityFloor => row(key, &config.security_floor, ToString::to_string),
            Key::OrchestratorCaFile => optional(key, &config.ca_file, path),
            Key::LogFormat => row(key, &config.log_format, ToString::to_string),
            Key::LogLevel => row(key, &config.log_level, |l| l.text.clone()),
            Key::HeartbeatInterval => row(key, &config.heartbeat_interval, duration),
            Key::LivenessTimeout => row(key, &config.liveness_timeout, duration),
            Key::RegisterTimeout => row(key, &config.register_timeout, duration),
            Key::BackoffMax => row(key, &config.backoff_max, duration),
            Key::BackoffJitter => row(key, &config.backoff_jitter, ToString::to_string),
            Key::AllowedBindRoots => row(key, &config.allowed_bind_roots, |roots: &Vec<String>| {
                if roots.is_empty() { "none (every bind mount refused)".into() } else { roots.join(",") }
            }),
            Key::HostPortRange => row(key, &config.host_port_range, |(low, high): &(u16, u16)| format!("{low}-{high}")),
            Key::TerminalIdleTimeout => row(key, &config.terminal_idle_timeout, duration),
            Key::GatewayUrl => optional(key, &config.gateway_url, ToString::to_string),
            Key::GatewayProbeInterval => row(key, &config.gateway_probe_interval, duration),
            Key::GatewayTimeout => row(key, &config.gateway_timeout, duration),
            Key::HealthAddr => optional(key, &config.health_addr, ToString::to_string),
            Key::HealthAllowRemote => row(key, &config.health_allow_remote, ToString::to_string),
        })
        .collect()
}

fn registration(config: &Config) -> String {
    match read_worker_state(&config.paths.worker_state) {
        Ok(Some(WorkerState { worker_id, name, registered_at })) => {
            format!("worker id {worker_id} (as \"{name}\", at Unix time {registered_at})")
        }
        Ok(None) => "not registered yet".into(),
        Err(e) => format!("unreadable worker.json ({e})"),
    }
}

/// Connects once and reports the outcome in a few words.
fn check_orchestrator(config: &Config) -> String {
    let Some(url) = &config.orchestrator_url else {
        return "not checked (ORCHESTRATOR_WS_URL is not set)".into();
    };
    let token = config.token.as_ref().map_or_else(|| Secret::new(NO_TOKEN), |t| t.value.clone());
    let connector = match cropscode_runtime::WsConnector::new(&url.value, token) {
        Ok(c) => c.with_connect_timeout(CHECK_TIMEOUT),
        Err(e) => return format!("not checked: {e}"),
    };
    let connector = match &config.ca_file {
        Some(ca) => match connector.with_ca_file(&ca.value) {
            Ok(c) => c,
            Err(e) => return format!("not checked: {e}"),
        },
        None => connector,
    };
    let outcome = smol::block_on(async {
        let attempt = async { Some(connector.connect().await) };
        let deadline = async {
            smol::Timer::after(CHECK_TIMEOUT + Duration::from_secs(1)).await;
            None
        };
        match futures_lite::future::or(attempt, deadline).await {
            Some(Ok(mut transport)) => {
                let close = Frame::Close { code: 1000, reason: "cropscode status".into() };
                let _ = futures_lite::future::or(async { transport.send(close).await.ok() }, async {
                    smol::Timer::after(Duration::from_secs(1)).await;
                    None
                })
                .await;
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Err(TransportError::Timeout),
        }
    });
    match outcome {
        Ok(()) => format!("ok ({})", url.value),
        Err(e) if e.is_auth() && config.token.is_none() => {
            format!("reachable, but no token is set: run `cropscode login` ({})", url.value)
        }
        Err(e) if e.is_auth() => format!("auth refused: {e}"),
        Err(e) => format!("unreachable: {e}"),
    }
}
