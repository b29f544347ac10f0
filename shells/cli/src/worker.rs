//! `cropscode worker`: the agent in the foreground until SIGINT or SIGTERM.
//!
//! Resolved configuration in, one `worker.register` and a session out: the
//! registration is built from the machine's figures ([`system_info`]) and the
//! configuration, the session timings from the timing keys, and the runtime's
//! `run_worker` drives it over a real WebSocket. Commands run on the
//! [`WorkerEngine`] (Docker or Podman, chosen by `CONTAINER_ENGINE`), which is
//! started first so the registration can list the engines it found, and which
//! keeps the heartbeat's running-container count. This module only reacts to
//! the session's events: it stores `worker.json` and hands the worker id to
//! the engine (its container labels) when the orchestrator accepts the worker,
//! appends every command to the audit log (`DATA_DIR/audit/audit.jsonl`), and
//! turns backoffs into log lines a person can act on.
//!
//! The engine runs behind the owner's security floor (`SECURITY_FLOOR`):
//! [`policy`] builds the core [`Policy`] from the configuration, and the
//! session only ever sees the [`PolicedEngine`].
//!
//! [`system_info`]: cropscode_runtime::system_info

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cropscode_core::backoff::BackoffConfig;
use cropscode_core::policy::{PolicedEngine, Policy, PolicyConfig, SecurityFloor};
use cropscode_core::protocol::{Limits, Mode, PROTOCOL_VERSION, Register};
use cropscode_core::session::{Event, SessionConfig};
use cropscode_core::stream::StreamConfig;
use cropscode_engine::{EngineOptions, WorkerEngine};
use cropscode_runtime::{AuditLog, RunError, SystemInfo};

use crate::Failure;
use crate::config::files::{self, WorkerState};
use crate::config::parse::SecurityFloor as FloorSetting;
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
    let url = config.require_url()?.value.clone();
    let token = config.require_token()?.value.clone();
    files::create_private_dir(&config.data_dir.value).map_err(|e| {
        Failure::Config(format!("{}: cannot create {}: {e}", config.data_dir.origin(), config.data_dir.value.display()))
    })?;

    let previous = match files::read_worker_state(&config.paths.worker_state) {
        Ok(state) => state,
        Err(error) => {
            tracing::warn!(%error, "ignoring an unreadable worker.json; the worker registers afresh");
            None
        }
    };
    let previous_id = previous.map(|s| s.worker_id);
    let engine = smol::block_on(WorkerEngine::start(engine_options(config, previous_id.clone())));
    let mut register = registration(config, &cropscode_runtime::system_info(), previous_id);
    register.container_engines = engine.engines();
    tracing::info!(
        url = %url,
        name = %register.name,
        mode = register.mode.as_str(),
        data_dir = %config.data_dir.value.display(),
        version = crate::VERSION,
        "starting the worker"
    );

    let policy = policy(config);
    log_floor(config, &policy);
    let name = register.name.clone();
    let mut options = cropscode_runtime::WorkerOptions::new(url, token, config.data_dir.value.clone(), register);
    options.ca_file = config.ca_file.as_ref().map(|s| s.value.clone());
    options.session = session_config(config);
    let audit = AuditLog::open(&config.data_dir.value);
    tracing::info!(path = %audit.path().display(), "auditing every command");
    let mut reporter = Reporter { config, name, engine: &engine, audit };
    let mut on_event = |event: &Event| reporter.on_event(event);
    let policed = PolicedEngine::new(engine.clone(), policy);
    let outcome = cropscode_runtime::run_worker(options, &policed, &mut on_event, shutdown);
    // Stops following the engine's events and the supervised Podman service, if any.
    smol::block_on(engine.shutdown());
    outcome.map_err(|e| match e {
        // The URL, CA file or token cannot be used: fix the configuration (exit 2).
        RunError::Connector(e) => Failure::Config(e.to_string()),
        other => Failure::Runtime(other.to_string()),
    })?;
    tracing::info!("worker stopped");
    Ok(())
}

/// How the engine is found: `CONTAINER_ENGINE`, `PODMAN_PATH`, `DATA_DIR` (where a
/// supervised `podman system service` listens), and the worker id from `worker.json`
/// so the running count is right before the first registration.
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
    let floor = security_floor(config);
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
    Policy::with_config(floor, settings)
        .with_host_path_resolver(|path| std::fs::canonicalize(path).ok()?.to_str().map(String::from))
}

/// `SECURITY_FLOOR` as the core's type.
fn security_floor(config: &Config) -> SecurityFloor {
    match config.security_floor.value {
        FloorSetting::None => SecurityFloor::None,
        FloorSetting::Baseline => SecurityFloor::Baseline,
        FloorSetting::Restricted => SecurityFloor::Restricted,
    }
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

/// The `worker.register` frame: the machine's figures, the configured name
/// (or the hostname) and mode, and the id from `worker.json` if there is one.
pub fn registration(config: &Config, info: &SystemInfo, worker_id: Option<String>) -> Register {
    Register {
        protocol_version: PROTOCOL_VERSION,
        name: config.name_or(&info.hostname),
        hostname: info.hostname.clone(),
        platform: info.platform.clone(),
        arch: info.arch.clone(),
        cpu_count: info.cpu_count,
        memory_total: info.memory_total,
        // Filled in from the engine's discovery (`WorkerEngine::engines`).
        container_engines: Vec::new(),
        agent_version: crate::VERSION.into(),
        mode: config.mode.value,
        worker_id,
        limits: Limits::DEFAULT,
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
            seed: jitter_seed(),
            ..BackoffConfig::DEFAULT
        },
        streams: StreamConfig { idle_timeout: config.terminal_idle_timeout.value, ..StreamConfig::DEFAULT },
        ..SessionConfig::DEFAULT
    }
}

/// Differs between workers and between restarts, so a fleet does not retry in step.
fn jitter_seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// Reacts to the session's events on behalf of the person running the worker.
struct Reporter<'a> {
    config: &'a Config,
    name: String,
    engine: &'a WorkerEngine,
    audit: AuditLog,
}

impl Reporter<'_> {
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::Registered { worker_id } => {
                // Before any command of this registration runs: its containers carry this id.
                self.engine.set_worker_id(worker_id);
                let state = WorkerState {
                    worker_id: worker_id.clone(),
                    name: self.name.clone(),
                    registered_at: SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs(),
                };
                let path = &self.config.paths.worker_state;
                match files::write_worker_state(path, &state) {
                    Ok(()) => tracing::debug!(path = %path.display(), worker_id = %worker_id, "stored worker.json"),
                    Err(error) => tracing::warn!(path = %path.display(), %error, "cannot store worker.json"),
                }
            }
            Event::BackingOff { delay, attempt, auth: true } => {
                let fix = match self.config.mode.value {
                    Mode::Byom => "run `cropscode login` with a valid token",
                    Mode::Fleet => "fix worker_token in agent.yaml or WORKER_TOKEN",
                };
                tracing::error!(
                    attempt,
                    "the orchestrator refused the worker token (HTTP 401/403 or worker.rejected) — {fix}; retrying in {}",
                    show_delay(*delay)
                );
            }
            Event::Audit(record) => self.audit.record(record),
            // The session logs the cause of other backoffs itself.
            Event::BackingOff { delay, attempt, auth: false } => {
                tracing::debug!(attempt, "reconnecting in {}", show_delay(*delay));
            }
            _ => {}
        }
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
        let env = Env::from_pairs([("HOME", home.to_str().unwrap())], home.join("no-agent.yaml"));
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
        let info = SystemInfo {
            hostname: "host-1".into(),
            platform: "linux".into(),
            arch: "x86_64".into(),
            cpu_count: 4,
            memory_total: 1 << 30,
        };
        let register = registration(&config_with(&[]), &info, Some("w-9".into()));
        assert_eq!((register.name.as_str(), register.worker_id.as_deref()), ("host-1", Some("w-9")));
        assert_eq!(register.agent_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(register.mode, Mode::Byom);
        assert!(register.container_engines.is_empty());
        let named = registration(&config_with(&[(Key::WorkerName, "pi-kitchen")]), &info, None);
        assert_eq!(named.name, "pi-kitchen");
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
