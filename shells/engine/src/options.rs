//! How the worker finds and uses its container engine: [`EngineOptions`], given to
//! [`WorkerEngine::start`](crate::WorkerEngine::start).

use std::path::PathBuf;
use std::time::Duration;

use cropscode_engine_api::Endpoint;

/// How the worker finds and uses its container engine.
///
/// The security floor is not an option: it is given once, by
/// [`PolicedEngine::new`](cropscode_core::policy::PolicedEngine::new) through
/// [`Engine::set_floor`](cropscode_core::Engine::set_floor). The running count is not
/// either: core's heartbeat asks [`Engine::containers_running`](cropscode_core::Engine::containers_running).
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Which engine serves commands when several answer (`CONTAINER_ENGINE`).
    pub preference: EnginePreference,
    /// The Podman binary (`PODMAN_PATH`); `None`: `podman` on `PATH`, if any.
    pub podman_path: Option<PathBuf>,
    /// `DATA_DIR`: where a supervised `podman system service` listens (`podman.sock`) and logs.
    /// `None`: never start one.
    pub data_dir: Option<PathBuf>,
    /// Use exactly this engine (tests, or a socket configured by hand): no discovery.
    pub endpoint: Option<Endpoint>,
    /// The worker's id (`cropscode.worker` label) when already known, e.g. from `worker.json`,
    /// so the running count is right before the first registration.
    pub worker_id: Option<String>,
    /// Safety-net recount of running containers, besides the event stream.
    pub resync_interval: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            preference: EnginePreference::Auto,
            podman_path: None,
            data_dir: None,
            endpoint: None,
            worker_id: None,
            resync_interval: Duration::from_secs(60),
        }
    }
}

/// Which engine serves commands when several answer (`CONTAINER_ENGINE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnginePreference {
    /// Podman when it answers (or can be started), else Docker. The product targets Podman
    /// first: it runs rootless and daemonless, and the worker can start its API service
    /// itself; Docker is used when it is the only engine.
    #[default]
    Auto,
    /// Docker only.
    Docker,
    /// Podman only.
    Podman,
}

impl EnginePreference {
    /// `auto`, `docker` or `podman`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EnginePreference::Auto => "auto",
            EnginePreference::Docker => "docker",
            EnginePreference::Podman => "podman",
        }
    }
}

impl std::str::FromStr for EnginePreference {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(EnginePreference::Auto),
            "docker" => Ok(EnginePreference::Docker),
            "podman" => Ok(EnginePreference::Podman),
            _ => Err(format!("`{value}` is not an engine: use auto, docker or podman")),
        }
    }
}

impl std::fmt::Display for EnginePreference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
