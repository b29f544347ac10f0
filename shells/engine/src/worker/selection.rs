//! Which engine serves the worker, and the state every command shares.
//!
//! At startup [`detect`] asks every candidate from [`discovery`] (plus the socket of
//! a Podman service the worker supervised before, under `DATA_DIR`) who it is. When Podman
//! is installed (`PODMAN_PATH`, or `podman` on `PATH`), Podman may serve
//! ([`EnginePreference`] is not `docker`) and no Podman socket answers, the worker starts
//! `podman system service --time=0 unix://<DATA_DIR>/podman.sock` as a supervised child.
//! Then one engine is chosen and kept: switching engines would hide every container made
//! on the other one. If it goes away, commands answer `engine_unavailable` and the client
//! reconnects on the next call once it is back; the transitions are logged once each.
//! If no engine answered at startup, discovery runs again (at most every few seconds) when
//! a command needs one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use cropscode_core::protocol::ErrorCode;
use smol::lock::Mutex as AsyncMutex;

use cropscode_core::policy::SecurityFloor;
use cropscode_engine_api::discovery::{self, BadAddress, Candidate, Source};
use cropscode_engine_api::{Endpoint, EngineClient, EngineError, EngineKind, EngineVersion, with_timeout};

use super::podman_service::PodmanService;
use crate::options::{EngineOptions, EnginePreference};
use crate::outcome::{Failure, Outcome};

/// One candidate address and what answered there.
#[derive(Debug, Clone)]
pub struct DetectedEngine {
    /// The address.
    pub endpoint: Endpoint,
    /// Why it was asked (`$DOCKER_HOST`, `Podman (rootful)`, `supervised Podman service`).
    pub source: String,
    /// The engine's version, or why it did not answer.
    pub answer: Result<EngineVersion, EngineError>,
}

/// What [`detect`] found.
#[derive(Debug, Clone, Default)]
pub struct Detection {
    /// Every candidate, in order of discovery.
    pub engines: Vec<DetectedEngine>,
    /// `DOCKER_HOST` / `CONTAINER_HOST` values that are not usable addresses.
    pub rejected: Vec<BadAddress>,
    /// The Podman binary, when installed.
    pub podman_binary: Option<PathBuf>,
}

impl Detection {
    /// The engine `preference` selects among those that answered.
    pub fn choose(&self, preference: EnginePreference) -> Option<&DetectedEngine> {
        let answering = || self.engines.iter().filter(|e| e.answer.is_ok());
        let of = |kind| answering().find(|e| e.answer.as_ref().is_ok_and(|v| v.kind == kind));
        match preference {
            EnginePreference::Auto => of(EngineKind::Podman).or_else(|| of(EngineKind::Docker)),
            EnginePreference::Docker => of(EngineKind::Docker),
            EnginePreference::Podman => of(EngineKind::Podman),
        }
    }

    /// Whether an engine of `kind` answered.
    pub fn answers(&self, kind: EngineKind) -> bool {
        self.engines.iter().any(|e| e.answer.as_ref().is_ok_and(|v| v.kind == kind))
    }

    /// Whether a worker (with a data directory) starts a Podman service: on Linux (where
    /// `podman system service` runs; on macOS and Windows Podman lives in a machine that
    /// `podman machine start` starts), Podman is installed, may serve, and no Podman socket
    /// answers.
    pub fn starts_podman(&self, preference: EnginePreference) -> bool {
        cfg!(target_os = "linux")
            && self.podman_binary.is_some()
            && preference != EnginePreference::Docker
            && !self.answers(EngineKind::Podman)
    }
}

/// Asks every candidate engine who it is (without starting anything): the process
/// environment's `DOCKER_HOST` / `CONTAINER_HOST`, the standard sockets, and
/// `<data_dir>/podman.sock`. For `cropscode status` and the worker's startup.
pub async fn detect(podman_path: Option<&Path>, data_dir: Option<&Path>) -> Detection {
    let found = discovery::discover();
    let mut candidates = found.candidates;
    if let Some(socket) = data_dir.map(supervised_socket).filter(|s| s.exists()) {
        let endpoint = Endpoint::Unix(socket);
        if !candidates.iter().any(|c| c.endpoint == endpoint) {
            candidates.push(Candidate { endpoint, source: Source::Standard("supervised Podman service") });
        }
    }
    let mut engines = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        let answer = probe(&candidate.endpoint).await.map(|(_, version)| version);
        engines.push(DetectedEngine { endpoint: candidate.endpoint, source: candidate.source.to_string(), answer });
    }
    Detection { engines, rejected: found.rejected, podman_binary: podman_binary(podman_path) }
}

/// Where the supervised Podman service listens.
pub(crate) fn supervised_socket(data_dir: &Path) -> PathBuf {
    data_dir.join("podman.sock")
}

async fn probe(endpoint: &Endpoint) -> Result<(EngineClient, EngineVersion), EngineError> {
    let client = EngineClient::new(endpoint.clone());
    // Podman's /version runs its helpers (~0.3 s); a hung socket must not stall startup.
    let version = with_timeout("GET /version", Duration::from_secs(10), client.version()).await?;
    Ok((client, version))
}

/// The Podman binary: `PODMAN_PATH` when given (and it exists), else `podman` on `PATH`.
fn podman_binary(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = configured {
        return path.is_file().then(|| path.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    let name = if cfg!(windows) { "podman.exe" } else { "podman" };
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// The serving engine.
#[derive(Debug, Clone)]
struct Active {
    client: EngineClient,
    kind: EngineKind,
}

struct Slot {
    active: Option<Active>,
    last_discovery: Instant,
}

/// State shared by every command and the background tasks.
pub(crate) struct Shared {
    preference: EnginePreference,
    podman_path: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    /// The endpoint given in the options, when discovery is not used.
    fixed: Option<Endpoint>,
    slot: AsyncMutex<Slot>,
    engines: Mutex<Vec<String>>,
    /// The serving engine's address, for log lines.
    endpoint: RwLock<String>,
    identity: RwLock<Option<String>>,
    identity_changed: (smol::channel::Sender<()>, smol::channel::Receiver<()>),
    /// Ids of this worker's containers the engine reported started (the event follower
    /// sends, the background execs listen: a relay left in a stopped container is taken).
    started: (smol::channel::Sender<String>, smol::channel::Receiver<String>),
    pub(crate) running: AtomicU32,
    health: AtomicU8,
    /// The owner's security floor, for the checks only the engine can make (`Engine::set_floor`).
    floor: RwLock<SecurityFloor>,
}

const HEALTH_UNKNOWN: u8 = 0;
const HEALTH_UP: u8 = 1;
const HEALTH_DOWN: u8 = 2;

/// Discovery runs again at most this often while no engine answers.
const REDISCOVERY_INTERVAL: Duration = Duration::from_secs(5);

impl Shared {
    pub(crate) async fn start(options: &EngineOptions) -> (Shared, Option<PodmanService>) {
        let mut podman = None;
        let (active, engines) = match &options.endpoint {
            Some(endpoint) => match probe(endpoint).await {
                Ok((client, version)) => {
                    tracing::info!(engine = %version.kind, version = %version.version, %endpoint, "container engine");
                    let name = version.kind.as_str().to_owned();
                    (Some(Active { client, kind: version.kind }), vec![name])
                }
                Err(error) => {
                    tracing::warn!(%endpoint, %error, "the configured container engine does not answer");
                    (None, Vec::new())
                }
            },
            None => {
                let mut detection = detect(options.podman_path.as_deref(), options.data_dir.as_deref()).await;
                for bad in &detection.rejected {
                    tracing::warn!(variable = bad.variable, "ignoring an unusable engine address: {}", bad.message);
                }
                if let (Some(binary), Some(data_dir)) = (detection.podman_binary.clone(), &options.data_dir)
                    && detection.starts_podman(options.preference)
                {
                    let socket = supervised_socket(data_dir);
                    match PodmanService::start(&binary, &socket, data_dir).await {
                        Ok(service) => {
                            let endpoint = Endpoint::Unix(socket);
                            let answer = probe(&endpoint).await.map(|(_, v)| v);
                            detection.engines.retain(|e| e.endpoint != endpoint);
                            let source = "supervised Podman service".to_owned();
                            detection.engines.push(DetectedEngine { endpoint, source, answer });
                            podman = Some(service);
                        }
                        Err(error) => tracing::warn!(podman = %binary.display(), "{error}"),
                    }
                }
                let active = detection.choose(options.preference).and_then(|chosen| {
                    let version = chosen.answer.as_ref().ok()?;
                    tracing::info!(
                        engine = %version.kind, version = %version.version, endpoint = %chosen.endpoint,
                        source = %chosen.source, "container engine"
                    );
                    Some(Active { client: EngineClient::new(chosen.endpoint.clone()), kind: version.kind })
                });
                if let Some(active) = &active {
                    // Settle the API version on the client that will be used.
                    let _ = active.client.version().await;
                } else {
                    tracing::warn!(
                        preference = %options.preference,
                        "no container engine answers; commands will fail with engine_unavailable until one does"
                    );
                }
                let names = engine_names(&detection, active_kind(&active));
                (active, names)
            }
        };
        let endpoint = active.as_ref().map(|a| a.client.endpoint().to_string()).unwrap_or_default();
        let shared = Shared {
            endpoint: RwLock::new(endpoint),
            preference: options.preference,
            podman_path: options.podman_path.clone(),
            data_dir: options.data_dir.clone(),
            fixed: options.endpoint.clone(),
            health: AtomicU8::new(if active.is_some() { HEALTH_UP } else { HEALTH_UNKNOWN }),
            slot: AsyncMutex::new(Slot { active, last_discovery: Instant::now() }),
            engines: Mutex::new(engines),
            identity: RwLock::new(options.worker_id.clone()),
            identity_changed: smol::channel::bounded(1),
            started: smol::channel::bounded(64),
            running: AtomicU32::new(0),
            floor: RwLock::new(SecurityFloor::None),
        };
        (shared, podman)
    }

    /// The serving engine's client; discovery runs again when there is none.
    pub(crate) async fn client(&self) -> Outcome<EngineClient> {
        let mut slot = self.slot.lock().await;
        if slot.active.is_none() && slot.last_discovery.elapsed() >= REDISCOVERY_INTERVAL {
            slot.last_discovery = Instant::now();
            slot.active = self.rediscover().await;
            if let Some(active) = &slot.active {
                if let Ok(mut endpoint) = self.endpoint.write() {
                    *endpoint = active.client.endpoint().to_string();
                }
                let names = vec![active.kind.as_str().to_owned()];
                if let Ok(mut engines) = self.engines.lock()
                    && engines.is_empty()
                {
                    *engines = names;
                }
            }
        }
        match &slot.active {
            Some(active) => Ok(active.client.clone()),
            None => Err(Failure::wire(
                ErrorCode::EngineUnavailable,
                format!("no container engine answers (CONTAINER_ENGINE={})", self.preference),
            )),
        }
    }

    async fn rediscover(&self) -> Option<Active> {
        let active = match &self.fixed {
            Some(endpoint) => probe(endpoint).await.ok().map(|(client, version)| Active { client, kind: version.kind }),
            None => {
                let detection = detect(self.podman_path.as_deref(), self.data_dir.as_deref()).await;
                let chosen = detection.choose(self.preference)?;
                let kind = chosen.answer.as_ref().ok()?.kind;
                let client = EngineClient::new(chosen.endpoint.clone());
                let _ = client.version().await;
                Some(Active { client, kind })
            }
        };
        if let Some(active) = &active {
            tracing::info!(engine = %active.kind, endpoint = %active.client.endpoint(), "container engine found");
        }
        active
    }

    pub(crate) async fn serving(&self) -> Option<(EngineKind, Endpoint)> {
        let slot = self.slot.lock().await;
        slot.active.as_ref().map(|a| (a.kind, a.client.endpoint().clone()))
    }

    pub(crate) fn engine_names(&self) -> Vec<String> {
        self.engines.lock().map(|e| e.clone()).unwrap_or_default()
    }

    pub(crate) fn floor(&self) -> SecurityFloor {
        *self.floor.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_floor(&self, floor: SecurityFloor) {
        *self.floor.write().unwrap_or_else(|e| e.into_inner()) = floor;
    }

    pub(crate) fn worker_id(&self) -> Option<String> {
        self.identity.read().ok().and_then(|id| id.clone())
    }

    pub(crate) fn set_worker_id(&self, worker_id: &str) {
        let Ok(mut identity) = self.identity.write() else { return };
        if identity.as_deref() != Some(worker_id) {
            *identity = Some(worker_id.to_owned());
            // Wakes the event follower, which re-subscribes with the new label.
            let _ = self.identity_changed.0.try_send(());
        }
    }

    pub(crate) fn identity_changes(&self) -> smol::channel::Receiver<()> {
        self.identity_changed.1.clone()
    }

    /// Notes that one of this worker's containers started (dropped when nobody keeps up).
    pub(crate) fn container_started(&self, id: &str) {
        let _ = self.started.0.try_send(id.to_owned());
    }

    /// The containers reported started, as [`container_started`](Self::container_started) notes them.
    pub(crate) fn started_containers(&self) -> smol::channel::Receiver<String> {
        self.started.1.clone()
    }

    /// Notes whether the engine answered, logging each change once.
    pub(crate) fn observe<T>(&self, outcome: &Outcome<T>) {
        match outcome {
            Err(Failure::Engine(error)) if error.is_unavailable() => self.mark_down(error),
            Err(Failure::Wire(_)) => {}
            _ => self.mark_up(),
        }
    }

    pub(crate) fn mark_up(&self) {
        if self.health.swap(HEALTH_UP, Ordering::Relaxed) == HEALTH_DOWN {
            tracing::info!(endpoint = %self.endpoint_text(), "the container engine answers again");
        }
    }

    pub(crate) fn mark_down(&self, why: &dyn std::fmt::Display) {
        if self.health.swap(HEALTH_DOWN, Ordering::Relaxed) != HEALTH_DOWN {
            tracing::warn!(endpoint = %self.endpoint_text(), error = %why, "the container engine is unavailable");
        }
    }

    fn endpoint_text(&self) -> String {
        self.endpoint.read().map(|e| e.clone()).unwrap_or_default()
    }
}

fn active_kind(active: &Option<Active>) -> Option<EngineKind> {
    active.as_ref().map(|a| a.kind)
}

/// Kinds that answered, the serving one first, each once.
fn engine_names(detection: &Detection, serving: Option<EngineKind>) -> Vec<String> {
    let mut kinds: Vec<EngineKind> = serving.into_iter().collect();
    for engine in &detection.engines {
        if let Ok(version) = &engine.answer
            && !kinds.contains(&version.kind)
        {
            kinds.push(version.kind);
        }
    }
    kinds.iter().map(|k| k.as_str().to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(kind: EngineKind, path: &str) -> DetectedEngine {
        let version = EngineVersion {
            kind,
            version: "1".into(),
            api_version: "1.41".into(),
            min_api_version: None,
            os: "linux".into(),
            arch: "amd64".into(),
            kernel_version: None,
        };
        DetectedEngine { endpoint: Endpoint::Unix(path.into()), source: "test".into(), answer: Ok(version) }
    }

    #[test]
    fn auto_prefers_podman_and_each_preference_is_strict() {
        let down = DetectedEngine {
            endpoint: Endpoint::Unix("/down".into()),
            source: "test".into(),
            answer: Err(EngineError::Connection("refused".into())),
        };
        let both = Detection {
            engines: vec![down.clone(), engine(EngineKind::Docker, "/d"), engine(EngineKind::Podman, "/p")],
            ..Default::default()
        };
        let pick = |d: &Detection, p| d.choose(p).map(|e| e.endpoint.to_string());
        assert_eq!(pick(&both, EnginePreference::Auto).as_deref(), Some("unix:///p"));
        assert_eq!(pick(&both, EnginePreference::Docker).as_deref(), Some("unix:///d"));
        assert_eq!(pick(&both, EnginePreference::Podman).as_deref(), Some("unix:///p"));
        let docker_only = Detection { engines: vec![down, engine(EngineKind::Docker, "/d")], ..Default::default() };
        assert_eq!(pick(&docker_only, EnginePreference::Auto).as_deref(), Some("unix:///d"));
        assert_eq!(pick(&docker_only, EnginePreference::Podman), None);
        assert_eq!(engine_names(&both, Some(EngineKind::Docker)), ["docker", "podman"]);
        assert_eq!(engine_names(&both, None), ["docker", "podman"]);
    }

    #[test]
    fn preferences_parse() {
        assert_eq!("Podman".parse::<EnginePreference>(), Ok(EnginePreference::Podman));
        assert_eq!("auto".parse::<EnginePreference>(), Ok(EnginePreference::Auto));
        assert!("kubernetes".parse::<EnginePreference>().is_err());
    }
}
