//! The agent's configuration: every value resolved from flags > environment >
//! file > defaults, remembering where it came from.
//!
//! Data flow: the subcommand turns its flags into [`Flags`]; [`Env`] captures
//! the process environment once; [`resolve`] decides the mode (which decides the
//! file layer: `agent.yaml` in fleet mode, the JSON files under `~/.cropscode/`
//! in BYOM mode), then picks each key's highest layer and parses it. Every
//! parse failure becomes a [`ConfigError`] naming the key as the user wrote it
//! and its [`Source`], so `cropscode worker` and `cropscode status` fail at
//! startup with exit code 2 instead of misbehaving later.

pub mod files;
pub mod parse;
pub mod paths;
mod resolve;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use cropscode_core::Secret;
use cropscode_core::protocol::Mode;
use cropscode_engine::EnginePreference;
use tracing_subscriber::filter::Targets;

pub use cropscode_core::policy::SecurityFloor;
pub use parse::LogFormat;
pub use resolve::resolve;

/// One configuration key, with its environment name (the canonical name), its
/// flag and its `agent.yaml` key (the environment name in lower case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// `ORCHESTRATOR_WS_URL`
    OrchestratorWsUrl,
    /// `WORKER_TOKEN` (never a flag: argv is world-readable)
    WorkerToken,
    /// `WORKER_NAME`
    WorkerName,
    /// `AGENT_MODE`
    AgentMode,
    /// `PODMAN_PATH`
    PodmanPath,
    /// `CONTAINER_ENGINE`
    ContainerEngine,
    /// `DATA_DIR`
    DataDir,
    /// `SECURITY_FLOOR`
    SecurityFloor,
    /// `AGENT_CONFIG` (the path of `agent.yaml`; not a key inside it)
    AgentConfig,
    /// `ORCHESTRATOR_CA_FILE`
    OrchestratorCaFile,
    /// `LOG_FORMAT`
    LogFormat,
    /// `LOG_LEVEL`
    LogLevel,
    /// `HEARTBEAT_INTERVAL`
    HeartbeatInterval,
    /// `LIVENESS_TIMEOUT`
    LivenessTimeout,
    /// `REGISTER_TIMEOUT`
    RegisterTimeout,
    /// `BACKOFF_MAX`
    BackoffMax,
    /// `BACKOFF_JITTER`
    BackoffJitter,
    /// `ALLOWED_BIND_ROOTS`
    AllowedBindRoots,
    /// `HOST_PORT_RANGE`
    HostPortRange,
    /// `TERMINAL_IDLE_TIMEOUT`
    TerminalIdleTimeout,
    /// `GATEWAY_URL`
    GatewayUrl,
    /// `GATEWAY_PROBE_INTERVAL`
    GatewayProbeInterval,
    /// `GATEWAY_TIMEOUT`
    GatewayTimeout,
    /// `HEALTH_ADDR`: the health listener's address (off when unset)
    HealthAddr,
    /// `HEALTH_ALLOW_REMOTE`: let `HEALTH_ADDR` be a non-loopback address
    HealthAllowRemote,
}

impl Key {
    /// Every key, in the order `status` shows them.
    pub const ALL: [Key; 25] = [
        Key::AgentMode,
        Key::AgentConfig,
        Key::OrchestratorWsUrl,
        Key::WorkerToken,
        Key::WorkerName,
        Key::DataDir,
        Key::PodmanPath,
        Key::ContainerEngine,
        Key::SecurityFloor,
        Key::AllowedBindRoots,
        Key::HostPortRange,
        Key::OrchestratorCaFile,
        Key::LogFormat,
        Key::LogLevel,
        Key::HeartbeatInterval,
        Key::LivenessTimeout,
        Key::RegisterTimeout,
        Key::BackoffMax,
        Key::BackoffJitter,
        Key::TerminalIdleTimeout,
        Key::GatewayUrl,
        Key::GatewayProbeInterval,
        Key::GatewayTimeout,
        Key::HealthAddr,
        Key::HealthAllowRemote,
    ];

    /// The environment variable, which is also the key in `config.json`.
    pub const fn env(self) -> &'static str {
        match self {
            Key::OrchestratorWsUrl => "ORCHESTRATOR_WS_URL",
            Key::WorkerToken => "WORKER_TOKEN",
            Key::WorkerName => "WORKER_NAME",
            Key::AgentMode => "AGENT_MODE",
            Key::PodmanPath => "PODMAN_PATH",
            Key::ContainerEngine => "CONTAINER_ENGINE",
            Key::DataDir => "DATA_DIR",
            Key::SecurityFloor => "SECURITY_FLOOR",
            Key::AgentConfig => "AGENT_CONFIG",
            Key::OrchestratorCaFile => "ORCHESTRATOR_CA_FILE",
            Key::LogFormat => "LOG_FORMAT",
            Key::LogLevel => "LOG_LEVEL",
            Key::HeartbeatInterval => "HEARTBEAT_INTERVAL",
            Key::LivenessTimeout => "LIVENESS_TIMEOUT",
            Key::RegisterTimeout => "REGISTER_TIMEOUT",
            Key::BackoffMax => "BACKOFF_MAX",
            Key::BackoffJitter => "BACKOFF_JITTER",
            Key::AllowedBindRoots => "ALLOWED_BIND_ROOTS",
            Key::HostPortRange => "HOST_PORT_RANGE",
            Key::TerminalIdleTimeout => "TERMINAL_IDLE_TIMEOUT",
            Key::GatewayUrl => "GATEWAY_URL",
            Key::GatewayProbeInterval => "GATEWAY_PROBE_INTERVAL",
            Key::GatewayTimeout => "GATEWAY_TIMEOUT",
            Key::HealthAddr => "HEALTH_ADDR",
            Key::HealthAllowRemote => "HEALTH_ALLOW_REMOTE",
        }
    }

    /// The command-line flag, if the key has one.
    pub const fn flag(self) -> Option<&'static str> {
        Some(match self {
            Key::OrchestratorWsUrl => "--url",
            Key::WorkerToken => return None,
            Key::WorkerName => "--name",
            Key::AgentMode => "--mode",
            Key::PodmanPath => "--podman-path",
            Key::ContainerEngine => "--container-engine",
            Key::DataDir => "--data-dir",
            Key::SecurityFloor => "--security-floor",
            Key::AgentConfig => "--config",
            Key::OrchestratorCaFile => "--ca-file",
            Key::LogFormat => "--log-format",
            Key::LogLevel => "--log-level",
            Key::HeartbeatInterval => "--heartbeat-interval",
            Key::LivenessTimeout => "--liveness-timeout",
            Key::RegisterTimeout => "--register-timeout",
            Key::BackoffMax => "--backoff-max",
            Key::BackoffJitter => "--backoff-jitter",
            Key::AllowedBindRoots => "--allowed-bind-roots",
            Key::HostPortRange => "--host-port-range",
            Key::TerminalIdleTimeout => "--terminal-idle-timeout",
            Key::GatewayUrl => "--gateway-url",
            Key::GatewayProbeInterval => "--gateway-probe-interval",
            Key::GatewayTimeout => "--gateway-timeout",
            Key::HealthAddr => "--health-addr",
            Key::HealthAllowRemote => "--health-allow-remote",
        })
    }

    /// The key in `agent.yaml`.
    pub fn yaml(self) -> String {
        self.env().to_ascii_lowercase()
    }

    /// The key whose environment name is `name`.
    pub fn from_env_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.env() == name)
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag (its name).
    Flag(&'static str),
    /// An environment variable.
    Env,
    /// A configuration file.
    File(PathBuf),
    /// The built-in default.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Env => f.write_str("environment"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A resolved value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting<T> {
    /// The parsed value.
    pub value: T,
    /// Its layer.
    pub source: Source,
    /// The key as the user wrote it in that layer (`LIVENESS_TIMEOUT`,
    /// `liveness_timeout`, `orchestratorUrl`), for messages.
    pub key: String,
}

impl<T> Setting<T> {
    /// A built-in default for `key`.
    pub fn default(key: Key, value: T) -> Self {
        Setting { value, source: Source::Default, key: key.env().into() }
    }

    /// "KEY (source)", the prefix of every message about this value.
    pub fn origin(&self) -> String {
        format!("{} ({})", self.key, self.source)
    }
}

/// `LOG_LEVEL` as written (for `status`) and as parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLevel {
    /// The directives as written, e.g. `info,cropscode_core=debug`.
    pub text: String,
    /// The parsed filter.
    pub targets: Targets,
}

/// A configuration problem found at startup. Exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// What the message is about: "LIVENESS_TIMEOUT (environment)" or a file path.
    pub subject: String,
    /// What is wrong and, where possible, how to fix it. Never contains the token.
    pub message: String,
}

impl ConfigError {
    /// A problem with one value.
    pub fn value(key: &str, source: &Source, message: impl Into<String>) -> Self {
        ConfigError { subject: format!("{key} ({source})"), message: message.into() }
    }

    /// A problem with a whole file.
    pub fn file(path: &std::path::Path, message: impl Into<String>) -> Self {
        ConfigError { subject: path.display().to_string(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Flag values given on the command line, by key.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    values: BTreeMap<Key, String>,
}

impl Flags {
    /// Records `value` for `key` when the flag was given.
    pub fn set(&mut self, key: Key, value: Option<&String>) -> &mut Self {
        if let Some(v) = value {
            self.values.insert(key, v.clone());
        }
        self
    }

    pub(crate) fn get(&self, key: Key) -> Option<&String> {
        self.values.get(&key)
    }
}

/// The environment as read once at startup, plus the system paths it implies.
#[derive(Debug, Clone)]
pub struct Env {
    vars: BTreeMap<String, OsString>,
    /// The fleet configuration read when neither `--config` nor `AGENT_CONFIG` names one.
    pub system_config: PathBuf,
}

/// The fleet configuration file's standard place on this system ([`paths::system_config`]).
pub fn default_system_config() -> PathBuf {
    paths::system_config(cropscode_engine_api::discovery::Os::CURRENT, std::env::var_os("ProgramData").as_deref())
}

/// The environment variables that hold secrets.
const SECRET_VARS: [&str; 1] = ["WORKER_TOKEN"];

/// The secrets [`take_secret_env`] took out of the process environment.
static SECRET_ENV: std::sync::OnceLock<Vec<(String, OsString)>> = std::sync::OnceLock::new();

/// Takes the secret variables (`WORKER_TOKEN`) out of the process environment, so no
/// child of the worker (the supervised `podman system service`, `kill`, a browser
/// opener, whatever comes later) inherits them; [`Env::from_process`] still sees them.
/// Called first thing in `main`, while the process has a single thread.
pub fn take_secret_env() {
    let taken = SECRET_VARS.iter().filter_map(|n| std::env::var_os(n).map(|v| ((*n).to_owned(), v))).collect();
    for name in SECRET_VARS {
        // SAFETY: `main` calls this before it starts any thread (no logger, runtime or
        // executor exists yet), so nothing can read the environment concurrently.
        unsafe { std::env::remove_var(name) };
    }
    let _ = SECRET_ENV.set(taken);
}

impl Env {
    /// The variables this crate reads: every [`Key`] plus the ones that locate home and data.
    const OTHER_VARS: [&'static str; 5] = ["HOME", "USERPROFILE", "XDG_DATA_HOME", "LOCALAPPDATA", "ProgramData"];

    /// Captures the process environment (with the secrets [`take_secret_env`] took out of it).
    pub fn from_process() -> Self {
        let names = Key::ALL.iter().map(|k| k.env()).chain(Self::OTHER_VARS);
        let mut vars: BTreeMap<String, OsString> =
            names.filter_map(|n| std::env::var_os(n).map(|v| (n.to_owned(), v))).collect();
        for (name, value) in SECRET_ENV.get().into_iter().flatten() {
            vars.insert(name.clone(), value.clone());
        }
        Env { vars, system_config: default_system_config() }
    }

    /// An environment made of `pairs` (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>, system_config: PathBuf) -> Self {
        let vars = pairs.into_iter().map(|(k, v)| (k.to_owned(), OsString::from(v))).collect();
        Env { vars, system_config }
    }

    #[cfg_attr(not(windows), allow(dead_code))]
    /// The same environment with `name` set to `value` (a Windows service pinned to its
    /// user's profile: `service run --home`).
    pub fn with_var(mut self, name: &str, value: impl Into<OsString>) -> Self {
        self.vars.insert(name.to_owned(), value.into());
        self
    }

    /// A variable, with empty values treated as unset (as container runtimes often pass them).
    pub fn get(&self, name: &str) -> Option<&OsString> {
        self.vars.get(name).filter(|v| !v.is_empty())
    }

    /// `~` on this system ([`paths::home`]): `HOME`, or the platform's home directory.
    pub fn home(&self) -> Option<PathBuf> {
        paths::home(cropscode_engine_api::discovery::Os::CURRENT, self)
    }
}

/// Where the agent's own files live for this configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `~/.cropscode` in BYOM mode.
    pub byom_dir: Option<PathBuf>,
    /// `credentials.json` (BYOM).
    pub credentials: Option<PathBuf>,
    /// `config.json` (BYOM).
    pub preferences: Option<PathBuf>,
    /// `worker.json`: `~/.cropscode/worker.json` (BYOM) or `DATA_DIR/worker.json` (fleet).
    pub worker_state: PathBuf,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `AGENT_MODE`.
    pub mode: Setting<Mode>,
    /// `AGENT_CONFIG`: the `agent.yaml` in use (fleet mode only).
    pub agent_config: Option<Setting<PathBuf>>,
    /// `ORCHESTRATOR_WS_URL`, already checked by the runtime's URL rules.
    pub orchestrator_url: Option<Setting<String>>,
    /// `WORKER_TOKEN`. Printed only as `***`.
    pub token: Option<Setting<Secret>>,
    /// `WORKER_NAME`; the hostname when unset.
    pub worker_name: Option<Setting<String>>,
    /// `DATA_DIR`.
    pub data_dir: Setting<PathBuf>,
    /// `PODMAN_PATH`.
    pub podman_path: Option<Setting<PathBuf>>,
    /// `CONTAINER_ENGINE`: which engine serves commands when several answer.
    pub container_engine: Setting<EnginePreference>,
    /// `SECURITY_FLOOR`.
    pub security_floor: Setting<SecurityFloor>,
    /// `ORCHESTRATOR_CA_FILE`.
    pub ca_file: Option<Setting<PathBuf>>,
    /// `LOG_FORMAT`.
    pub log_format: Setting<LogFormat>,
    /// `LOG_LEVEL`.
    pub log_level: Setting<LogLevel>,
    /// `HEARTBEAT_INTERVAL`.
    pub heartbeat_interval: Setting<Duration>,
    /// `LIVENESS_TIMEOUT`.
    pub liveness_timeout: Setting<Duration>,
    /// `REGISTER_TIMEOUT`.
    pub register_timeout: Setting<Duration>,
    /// `BACKOFF_MAX`.
    pub backoff_max: Setting<Duration>,
    /// `BACKOFF_JITTER`.
    pub backoff_jitter: Setting<f32>,
    /// `ALLOWED_BIND_ROOTS`: host directories under which `baseline` allows bind mounts.
    pub allowed_bind_roots: Setting<Vec<String>>,
    /// `HOST_PORT_RANGE`: the host ports containers may publish, inclusive.
    pub host_port_range: Setting<(u16, u16)>,
    /// `TERMINAL_IDLE_TIMEOUT`: how long a detached terminal stays alive.
    pub terminal_idle_timeout: Setting<Duration>,
    /// `GATEWAY_URL`: the gateway the heartbeat reports on (shown without
    /// credentials or query).
    pub gateway_url: Option<Setting<cropscode_runtime::GatewayUrl>>,
    /// `GATEWAY_PROBE_INTERVAL`: the pause between two gateway probes.
    pub gateway_probe_interval: Setting<Duration>,
    /// `GATEWAY_TIMEOUT`: the most one gateway probe may take.
    pub gateway_timeout: Setting<Duration>,
    /// `HEALTH_ADDR`: where `/healthz`, `/readyz` and `/metrics` are served (off when unset).
    pub health_addr: Option<Setting<std::net::SocketAddr>>,
    /// `HEALTH_ALLOW_REMOTE`: whether `HEALTH_ADDR` may be a non-loopback address.
    pub health_allow_remote: Setting<bool>,
    /// The agent's own files.
    pub paths: Paths,
}

/// Defaults of the timing keys (the session's own defaults, spelled out here
/// so `status` can show them).
pub mod defaults {
    use std::time::Duration;

    /// `HEARTBEAT_INTERVAL`: the product's 10 seconds.
    pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
    /// `LIVENESS_TIMEOUT`.
    pub const LIVENESS_TIMEOUT: Duration = Duration::from_secs(45);
    /// `REGISTER_TIMEOUT`.
    pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(15);
    /// `BACKOFF_MAX`: the product's 30 second cap.
    pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
    /// `BACKOFF_JITTER`: full jitter.
    pub const BACKOFF_JITTER: f32 = 1.0;
    /// `LOG_LEVEL`.
    pub const LOG_LEVEL: &str = "info";
    /// `HOST_PORT_RANGE`: unprivileged ports only.
    pub const HOST_PORT_RANGE: (u16, u16) = (1024, u16::MAX);
    /// `TERMINAL_IDLE_TIMEOUT`: 10 minutes.
    pub const TERMINAL_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
    /// `GATEWAY_PROBE_INTERVAL`.
    pub const GATEWAY_PROBE_INTERVAL: Duration = cropscode_runtime::gateway::DEFAULT_PROBE_INTERVAL;
    /// `GATEWAY_TIMEOUT`.
    pub const GATEWAY_TIMEOUT: Duration = cropscode_runtime::gateway::DEFAULT_PROBE_TIMEOUT;
}

impl Config {
    /// The URL, or an error saying how to set one.
    pub fn require_url(&self) -> Result<&Setting<String>, ConfigError> {
        self.orchestrator_url.as_ref().ok_or_else(|| ConfigError {
            subject: "ORCHESTRATOR_WS_URL".into(),
            message: match self.mode.value {
                Mode::Byom => {
                    "not set: run `cropscode login --url wss://…`, or set ORCHESTRATOR_WS_URL or --url".into()
                }
                Mode::Fleet => {
                    "not set: add orchestrator_ws_url to agent.yaml, or set ORCHESTRATOR_WS_URL or --url".into()
                }
            },
        })
    }

    /// The token, or an error saying how to set one.
    pub fn require_token(&self) -> Result<&Setting<Secret>, ConfigError> {
        self.token.as_ref().ok_or_else(|| ConfigError {
            subject: "WORKER_TOKEN".into(),
            message: match self.mode.value {
                Mode::Byom => {
                    "not set: run `cropscode login` (the token is read from stdin), or set WORKER_TOKEN".into()
                }
                Mode::Fleet => "not set: add worker_token to agent.yaml, or set WORKER_TOKEN".into(),
            },
        })
    }
}
