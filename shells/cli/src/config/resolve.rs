//! Layering: flags > environment > file > defaults.
//!
//! The mode is decided first, because it decides the file layer: `AGENT_MODE`
//! from a flag or the environment; otherwise `agent.yaml` (from `--config`,
//! `AGENT_CONFIG`, or the system path if it exists) means fleet mode, and no
//! `agent.yaml` means BYOM. In BYOM mode the file layer is `credentials.json`
//! (token and URL, which belong together) over `config.json`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cropscode_core::Secret;
use cropscode_core::protocol::Mode;
use cropscode_engine::EnginePreference;

use super::SecurityFloor;
use super::files::{self, FileEntry};
use super::parse::{self, LogFormat};
use super::{Config, ConfigError, Env, Flags, Key, LogLevel, Paths, Setting, Source, defaults};

/// Shortest accepted timer value: anything shorter would make the worker spin.
const MIN_TIMER: Duration = Duration::from_millis(100);
/// Longest accepted timer value.
const MAX_TIMER: Duration = Duration::from_secs(24 * 3600);

/// A value before parsing, from the highest layer that has one.
struct Raw {
    key: String,
    source: Source,
    value: String,
}

struct Layers<'a> {
    flags: &'a Flags,
    env: &'a Env,
    file: Vec<FileEntry>,
}

impl Layers<'_> {
    fn pick(&self, key: Key) -> Result<Option<Raw>, ConfigError> {
        if let (Some(value), Some(flag)) = (self.flags.get(key), key.flag()) {
            return Ok(Some(Raw { key: key.env().into(), source: Source::Flag(flag), value: value.clone() }));
        }
        if let Some(value) = self.env.get(key.env()) {
            let value = value.to_str().ok_or_else(|| ConfigError::value(key.env(), &Source::Env, "not valid UTF-8"))?;
            return Ok(Some(Raw { key: key.env().into(), source: Source::Env, value: value.into() }));
        }
        Ok(self.file.iter().find(|e| e.key == key && !e.value.trim().is_empty()).map(|e| Raw {
            key: e.written.clone(),
            source: Source::File(e.path.clone()),
            value: e.value.clone(),
        }))
    }

    fn get<T>(&self, key: Key, parse: impl Fn(&str) -> Result<T, String>) -> Result<Option<Setting<T>>, ConfigError> {
        let Some(raw) = self.pick(key)? else { return Ok(None) };
        match parse(&raw.value) {
            Ok(value) => Ok(Some(Setting { value, source: raw.source, key: raw.key })),
            Err(message) => Err(ConfigError::value(&raw.key, &raw.source, message)),
        }
    }

    fn get_or<T>(
        &self,
        key: Key,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Setting<T>, ConfigError> {
        Ok(self.get(key, parse)?.unwrap_or_else(|| Setting::default(key, default)))
    }

    fn timer(&self, key: Key, default: Duration) -> Result<Setting<Duration>, ConfigError> {
        self.get_or(key, default, |t| parse::duration_between(t, MIN_TIMER, MAX_TIMER))
    }
}

/// Resolves the configuration from `flags`, `env` and the files they point to.
pub fn resolve(flags: &Flags, env: &Env) -> Result<Config, ConfigError> {
    let mut layers = Layers { flags, env, file: Vec::new() };

    let explicit_yaml = layers.get(Key::AgentConfig, parse::path)?;
    let explicit_mode = layers.get(Key::AgentMode, parse::mode)?;
    let agent_config = match (&explicit_mode, explicit_yaml) {
        (Some(mode), Some(yaml)) if mode.value == Mode::Byom => {
            return Err(ConfigError::value(
                &yaml.key,
                &yaml.source,
                format!("agent.yaml is read in fleet mode only, but {} is byom", mode.origin()),
            ));
        }
        (Some(mode), None) if mode.value == Mode::Byom => None,
        (_, Some(yaml)) => Some(yaml),
        (_, None) if env.system_config.exists() => Some(Setting::default(Key::AgentConfig, env.system_config.clone())),
        (_, None) => None,
    };
    if let Some(yaml) = &agent_config {
        layers.file = files::read_agent_yaml(&yaml.value)?;
    }

    let default_mode = if agent_config.is_some() { Mode::Fleet } else { Mode::Byom };
    let mode = layers.get_or(Key::AgentMode, default_mode, parse::mode)?;
    if mode.value == Mode::Byom && matches!(mode.source, Source::File(_)) {
        return Err(ConfigError::value(
            &mode.key,
            &mode.source,
            "agent.yaml configures fleet mode; for BYOM remove the file or set AGENT_MODE=byom",
        ));
    }

    let mut paths = Paths { byom_dir: None, credentials: None, preferences: None, worker_state: PathBuf::new() };
    if mode.value == Mode::Byom {
        let home = env.home().ok_or_else(|| ConfigError {
            subject: "HOME".into(),
            message: "not set, so ~/.cropscode cannot be found".into(),
        })?;
        let dir = home.join(".cropscode");
        let (credentials, preferences) = (dir.join("credentials.json"), dir.join("config.json"));
        if let Some(creds) = files::read_credentials(&credentials)? {
            let entry = |key, written: &str, value: String| FileEntry {
                key,
                written: written.into(),
                value,
                path: credentials.clone(),
            };
            if let Some(token) = creds.token {
                layers.file.push(entry(Key::WorkerToken, files::TOKEN_KEY, token.expose().into()));
            }
            if let Some(url) = creds.orchestrator_url {
                layers.file.push(entry(Key::OrchestratorWsUrl, files::URL_KEY, url));
            }
        }
        layers.file.extend(files::read_preferences(&preferences)?);
        paths.worker_state = dir.join("worker.json");
        paths.byom_dir = Some(dir);
        paths.credentials = Some(credentials);
        paths.preferences = Some(preferences);
    }

    let data_dir = match layers.get(Key::DataDir, parse::path)? {
        Some(dir) => dir,
        None => Setting::default(
            Key::DataDir,
            default_data_dir(mode.value, env).ok_or_else(|| ConfigError {
                subject: "DATA_DIR".into(),
                message: "no default on this system (HOME is not set): set DATA_DIR or --data-dir".into(),
            })?,
        ),
    };
    if mode.value == Mode::Fleet {
        paths.worker_state = data_dir.value.join("worker.json");
    }

    let ca_file = layers.get(Key::OrchestratorCaFile, parse::path)?;
    if let Some(ca) = &ca_file {
        check_readable_file(&ca.value).map_err(|m| ConfigError::value(&ca.key, &ca.source, m))?;
    }

    let health_allow_remote = layers.get_or(Key::HealthAllowRemote, false, parse::boolean)?;
    let health_addr = layers.get(Key::HealthAddr, parse::socket_addr)?;
    if let Some(addr) = &health_addr
        && !addr.value.ip().is_loopback()
        && !health_allow_remote.value
    {
        return Err(ConfigError::value(
            &addr.key,
            &addr.source,
            format!(
                "{} is not a loopback address; the metrics tell what this machine runs, so serve them elsewhere \
                 only with HEALTH_ALLOW_REMOTE=1",
                addr.value
            ),
        ));
    }

    Ok(Config {
        agent_config,
        orchestrator_url: layers.get(Key::OrchestratorWsUrl, orchestrator_url)?,
        token: layers.get(Key::WorkerToken, token)?,
        worker_name: layers.get(Key::WorkerName, worker_name)?,
        data_dir,
        podman_path: layers.get(Key::PodmanPath, parse::path)?,
        container_engine: layers.get_or(Key::ContainerEngine, EnginePreference::default(), |t| t.parse())?,
        security_floor: layers.get_or(Key::SecurityFloor, SecurityFloor::default(), parse::security_floor)?,
        ca_file,
        log_format: layers.get_or(Key::LogFormat, LogFormat::default(), LogFormat::parse)?,
        log_level: layers.get_or(Key::LogLevel, default_log_level(), |t| {
            parse::log_level(t).map(|targets| LogLevel { text: t.trim().into(), targets })
        })?,
        heartbeat_interval: layers.timer(Key::HeartbeatInterval, defaults::HEARTBEAT_INTERVAL)?,
        liveness_timeout: layers.timer(Key::LivenessTimeout, defaults::LIVENESS_TIMEOUT)?,
        register_timeout: layers.timer(Key::RegisterTimeout, defaults::REGISTER_TIMEOUT)?,
        backoff_max: layers.timer(Key::BackoffMax, defaults::BACKOFF_MAX)?,
        backoff_jitter: layers.get_or(Key::BackoffJitter, defaults::BACKOFF_JITTER, parse::jitter)?,
        allowed_bind_roots: layers.get_or(Key::AllowedBindRoots, Vec::new(), parse::absolute_paths)?,
        host_port_range: layers.get_or(Key::HostPortRange, defaults::HOST_PORT_RANGE, parse::port_range)?,
        terminal_idle_timeout: layers.timer(Key::TerminalIdleTimeout, defaults::TERMINAL_IDLE_TIMEOUT)?,
        gateway_url: layers.get(Key::GatewayUrl, cropscode_runtime::GatewayUrl::parse)?,
        gateway_probe_interval: layers.timer(Key::GatewayProbeInterval, defaults::GATEWAY_PROBE_INTERVAL)?,
        gateway_timeout: layers.timer(Key::GatewayTimeout, defaults::GATEWAY_TIMEOUT)?,
        health_addr,
        health_allow_remote,
        mode,
        paths,
    })
}

/// `info`, the level used when `LOG_LEVEL` is unset (and before configuration is read).
pub fn default_log_level() -> LogLevel {
    let text = defaults::LOG_LEVEL;
    LogLevel { text: text.into(), targets: parse::log_level(text).unwrap_or_default() }
}

fn orchestrator_url(text: &str) -> Result<String, String> {
    let url = text.trim();
    cropscode_runtime::validate_url(url).map_err(|e| e.to_string())?;
    Ok(url.to_owned())
}

/// The token goes into an HTTP header verbatim, so it must be one printable word.
/// The message never repeats it.
fn token(text: &str) -> Result<Secret, String> {
    let token = text.trim();
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the token contains spaces or control characters; paste it again with `cropscode login`".into());
    }
    Ok(Secret::new(token))
}

fn worker_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(format!("expected a name of at most 128 printable characters, got '{}'", name.escape_debug()));
    }
    Ok(name.to_owned())
}

fn check_readable_file(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(format!("{} is not a file", path.display())),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The default data directory (`DATA_DIR`) on this system ([`super::paths::data_dir`]).
pub fn default_data_dir(mode: Mode, env: &Env) -> Option<PathBuf> {
    super::paths::data_dir(cropscode_engine_api::discovery::Os::CURRENT, mode, env)
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
