//! `cropscode worker`: the agent in the foreground until SIGINT or SIGTERM.
//!
//! This module only turns the resolved configuration into the runtime's
//! [`Agent`] builder and runs it: the name, mode, timings, CA file and the
//! owner's security floor ([`policy`]: the core [`Policy`] from
//! `SECURITY_FLOOR`, `ALLOWED_BIND_ROOTS`, `HOST_PORT_RANGE` and the worker's
//! own files). Everything correctness depends on — the engine behind the
//! floor, `worker.register` from the machine's figures, `worker.json`, the
//! audit log, the per-run seeds, the heartbeat's container count — is the
//! builder's. Commands run on the [`WorkerEngine`] (Docker or Podman, chosen
//! by `CONTAINER_ENGINE`), started first so the registration can list the
//! engines it found. What stays here is for the person running the worker:
//! the startup lines, and backoffs turned into log lines they can act on. The
//! health listener (`HEALTH_ADDR`) and `worker.sock` are the builder's too; this
//! module hands it the engine's check (`WorkerEngine::check`) for `/readyz`.

use std::future::Future;
use std::time::Duration;

use cropscode_core::backoff::BackoffConfig;
use cropscode_core::policy::{Policy, PolicyConfig, SecurityFloor};
use cropscode_core::protocol::Mode;
use cropscode_core::session::{Event, SessionConfig};
use cropscode_core::stream::StreamConfig;
use cropscode_engine::{EngineOptions, WorkerEngine};
use cropscode_runtime::{Agent, AgentBuilder, BuildError};

use crate::Failure;
use crate::config::parse::show_duration;
use crate::config::{self, Config, Env};
use crate::flags::config_flags;

config_flags! {
    /// run the worker agent in the foreground until SIGINT or SIGTERM
    #[argh(subcommand, name = "worker")]
    pub struct WorkerCommand {}
}

impl WorkerCommand {
    /// Runs the subcommand.
    pub fn run(self) -> Result<(), Failure> {
        let config = config::resolve(&self.config_flags(), &Env::from_process())?;
        crate::logging::init(config.log_format.value, config.log_level.value.targets.clone());
        let shutdown = cropscode_runtime::shutdown_signal()
            .map_err(|e| Failure::Runtime(format!("cannot watch for SIGINT/SIGTERM: {e}")))?;
        run_agent(&config, shutdown)
    }
}

/// Runs the worker described by `config` until `shutdown` completes.
/// Used by `cropscode worker` and, on its own thread, by `cropscode dev`.
pub fn run_agent(config: &Config, shutdown: impl Future<Output = ()>) -> Result<(), Failure> {
    let builder = agent_builder(config)?;
    let engine = smol::block_on(WorkerEngine::start(engine_options(config, builder.stored_worker_id())));
    let check = engine.clone();
    let built = builder
        .container_engines(engine.engines())
        .engine_check(move || {
            let engine = check.clone();
            async move { engine.check().await }
        })
        .build(engine.clone());
    if let Ok(agent) = &built {
        let register = agent.register();
        tracing::info!(
            url = %config.require_url()?.value,
            name = %register.name,
            mode = register.mode.as_str(),
            data_dir = %config.data_dir.value.display(),
            version = crate::VERSION,
            "starting the worker"
        );
        log_floor(config, agent.policy());
    }
    let outcome = built.map(|agent| agent.run(shutdown));
    // Stops following the engine's events and the supervised Podman service, if any.
    smol::block_on(engine.shutdown());
    outcome.map_err(|e| match e {
        // The URL, CA file or token cannot be used: fix the configuration (exit 2).
        BuildError::Connector(e) => Failure::Config(e.to_string()),
        e @ BuildError::Health { .. } => Failure::Config(e.to_string()),
        BuildError::DataDir { path, error } => {
            Failure::Config(format!("{}: cannot create {}: {error}", config.data_dir.origin(), path.display()))
        }
        other => Failure::Runtime(other.to_string()),
    })?;
    tracing::info!("worker stopped");
    Ok(())
}

/// The agent `config` describes, short of its engine: the builder assembles the rest.
pub fn agent_builder(config: &Config) -> Result<AgentBuilder, Failure> {
    let url = config.require_url()?.value.clone();
    let token = config.require_token()?.value.clone();
    let mut builder = Agent::builder(url, token, config.data_dir.value.clone())
        .worker_state_file(config.paths.worker_state.clone())
        .mode(config.mode.value)
        .agent_version(crate::VERSION)
        .policy(policy(config))
        .session(session_config(config))
        .on_event(hints(config.mode.value));
    if let Some(name) = &config.worker_name {
        builder = builder.name(name.value.clone());
    }
    if let Some(ca_file) = &config.ca_file {
        builder = builder.ca_file(ca_file.value.clone());
    }
    if let Some(gateway) = &config.gateway_url {
        builder = builder.gateway_url(gateway.value.clone());
    }
    builder = builder
        .gateway_probe_interval(config.gateway_probe_interval.value)
        .gateway_timeout(config.gateway_timeout.value);
    if let Some(addr) = &config.health_addr {
        builder = builder.health_addr(addr.value).health_allow_remote(config.health_allow_remote.value);
    }
    Ok(builder)
}

/// How the engine is found: `CONTAINER_ENGINE`, `PODMAN_PATH`, `DATA_DIR` (where a
/// supervised `podman system service` listens), and the worker id from `worker.json`
/// so the engine knows its containers from the start.
pub fn engine_options(config: &Config, worker_id: Option<String>) -> EngineOptions {
    EngineOptions {
        preference: config.container_engine.value,
        podman_path: config.podman_path.as_ref().map(|s| s.value.clone()),
        data_dir: Some(config.data_dir.value.clone()),
        worker_id,
        ..EngineOptions::default()
    }
}

/// The owner's security floor (`SECURITY_FLOOR`). Bind mounts are judged by
/// their real path on this machine too (symlinks followed), and the worker's
/// own files (`DATA_DIR`, `~/.cropscode`) are never mountable.
pub fn policy(config: &Config) -> Policy {
    let mut protected = vec![config.data_dir.value.clone()];
    protected.extend(config.paths.byom_dir.clone());
    let protected_paths = protected.iter().filter_map(|p| p.to_str()).map(String::from).collect();
    let (host_port_min, host_port_max) = config.host_port_range.value;
    let settings = PolicyConfig {
        protected_paths,
        allowed_bind_roots: config.allowed_bind_roots.value.clone(),
        host_port_min,
        host_port_max,
        ..PolicyConfig::default()
    };
    Policy::with_config(config.security_floor.value, settings)
        .with_host_path_resolver(|path| std::fs::canonicalize(path).ok()?.to_str().map(String::from))
}

/// Says which floor is in force; `none` loudly, since it leaves the machine to the orchestrator.
fn log_floor(config: &Config, policy: &Policy) {
    let floor = policy.floor();
    if floor == SecurityFloor::None {
        tracing::warn!(
            source = %config.security_floor.origin(),
            "SECURITY_FLOOR=none: NO SECURITY FLOOR — the orchestrator may run privileged containers, use host \
             namespaces and mount any host path on this machine; set SECURITY_FLOOR=baseline unless this machine \
             is dedicated to the orchestrator"
        );
    } else {
        tracing::info!(floor = floor.as_str(), source = %config.security_floor.origin(), "security floor in force");
    }
}

/// The session's timings from the configuration (the session itself brings
/// its pings forward to fit a short liveness deadline).
pub fn session_config(config: &Config) -> SessionConfig {
    let max = config.backoff_max.value;
    SessionConfig {
        heartbeat_interval: config.heartbeat_interval.value,
        liveness_timeout: config.liveness_timeout.value,
        register_timeout: config.register_timeout.value,
        backoff: BackoffConfig {
            initial: BackoffConfig::DEFAULT.initial.min(max),
            max,
            jitter: config.backoff_jitter.value,
            // Seeded per run by the agent.
            ..BackoffConfig::DEFAULT
        },
        streams: StreamConfig { idle_timeout: config.terminal_idle_timeout.value, ..StreamConfig::DEFAULT },
        ..SessionConfig::DEFAULT
    }
}

/// Turns backoffs into log lines a person can act on (the agent itself
/// stores `worker.json` and the audit records).
fn hints(mode: Mode) -> impl FnMut(&Event) + Send + 'static {
    move |event| match event {
        Event::BackingOff { delay, attempt, auth: true } => {
            let fix = match mode {
                Mode::Byom => "run `cropscode login` with a valid token",
                Mode::Fleet => "fix worker_token in agent.yaml or WORKER_TOKEN",
            };
            tracing::error!(
                attempt,
                "the orchestrator refused the worker token (HTTP 401/403 or worker.rejected) — {fix}; retrying in {}",
                show_delay(*delay)
            );
        }
        // The session logs the cause of other backoffs itself.
        Event::BackingOff { delay, attempt, auth: false } => {
            tracing::debug!(attempt, "reconnecting in {}", show_delay(*delay));
        }
        _ => {}
    }
}

fn show_delay(delay: Duration) -> String {
    // Jittered delays have odd milliseconds; whole tenths read better.
    let tenths = Duration::from_millis((delay.as_millis() as u64).div_ceil(100) * 100);
    show_duration(tenths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Flags, Key};

    fn config_with(pairs: &[(Key, &str)]) -> Config {
        let mut flags = Flags::default();
        for (key, value) in pairs {
            flags.set(*key, Some(&value.to_string()));
        }
        let home = std::env::temp_dir().join("cropscode-worker-unit-home");
        let env = Env::from_pairs(
            [("HOME", home.to_str().unwrap()), ("WORKER_TOKEN", "tok-unit")],
            home.join("no-agent.yaml"),
        );
        config::resolve(&flags, &env).unwrap()
    }

    #[test]
    fn timings_reach_the_session() {
        let config = config_with(&[
            (Key::HeartbeatInterval, "1s"),
            (Key::LivenessTimeout, "3s"),
            (Key::BackoffMax, "500ms"),
            (Key::BackoffJitter, "0"),
        ]);
        let session = session_config(&config);
        assert_eq!(session.heartbeat_interval, Duration::from_secs(1));
        assert_eq!(session.liveness_timeout, Duration::from_secs(3));
        assert_eq!(session.backoff.max, Duration::from_millis(500));
        assert_eq!(session.backoff.initial, Duration::from_millis(500), "never above the cap");
        assert_eq!(session.backoff.jitter, 0.0);

        let defaults = session_config(&config_with(&[]));
        assert_eq!(defaults.backoff.initial, Duration::from_secs(1));
        assert_eq!(defaults.backoff.max, Duration::from_secs(30));
    }

    #[test]
    fn registration_uses_the_name_or_the_hostname() {
        let url = (Key::OrchestratorWsUrl, "ws://127.0.0.1:9/worker");
        let build = |config: &Config| {
            let builder = agent_builder(config).unwrap();
            builder.build(cropscode_core::dispatch::NoEngine).unwrap().register().clone()
        };
        let config = config_with(&[url]);
        let state = cropscode_runtime::WorkerState::now("w-9", "earlier");
        cropscode_runtime::write_worker_state(&config.paths.worker_state, &state).unwrap();
        let register = build(&config);
        let hostname = cropscode_runtime::system_info().hostname;
        assert_eq!((register.name.as_str(), register.worker_id.as_deref()), (hostname.as_str(), Some("w-9")));
        assert_eq!(register.agent_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(register.mode, Mode::Byom);
        assert!(register.container_engines.is_empty());
        let named = build(&config_with(&[url, (Key::WorkerName, "pi-kitchen")]));
        assert_eq!(named.name, "pi-kitchen");
        let _ = std::fs::remove_file(&config.paths.worker_state);
    }

    #[test]
    fn the_floor_comes_from_the_configuration_and_protects_the_workers_files() {
        let config = config_with(&[]);
        let default = policy(&config);
        assert_eq!(default.floor(), SecurityFloor::Baseline);
        let data_dir = config.data_dir.value.to_str().unwrap().to_owned();
        assert!(default.config().protected_paths.contains(&data_dir), "{:?}", default.config());
        for (text, floor) in [("restricted", SecurityFloor::Restricted), ("none", SecurityFloor::None)] {
            assert_eq!(policy(&config_with(&[(Key::SecurityFloor, text)])).floor(), floor);
        }
    }

    #[test]
    fn delays_read_in_tenths() {
        assert_eq!(show_delay(Duration::from_millis(2_345)), "2s400ms");
        assert_eq!(show_delay(Duration::from_secs(30)), "30s");
    }
}
