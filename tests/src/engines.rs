//! The real container engines for the engine behaviour tests: where they listen
//! (`/run/cropscode-test/engines.env`, written by `tests/env/prepare.sh`), a worker bound
//! to one of them, and cleanup of everything a test created.
//!
//! A test gets an [`EngineRun`]: its own orchestrator, its own worker (bound to Docker or
//! to Podman) with a worker id unique to the run, a direct engine client to look behind
//! the worker's back, and a run id. Everything the test creates carries the label
//! [`RUN_LABEL`]`=<run>` (containers made through the worker also carry the worker's own
//! `cropscode.worker=<worker id>`), and dropping the run removes all of it, so a failing
//! test leaves nothing behind and parallel tests never see each other's containers.
//!
//! ```no_run
//! use cropscode_tests::*;
//! use serde_json::json;
//!
//! fn lifecycle(t: &EngineRun) {
//!     let id = t.create_running("web", &t.tenant("a"));
//!     let out = t.ok("container.exec", json!({"containerId": id, "command": ["echo", "hi"]}));
//!     assert_eq!(out["stdout"], "hi\n");
//! }
//! engine_tests!(lifecycle);
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cropscode_core::protocol::{Heartbeat, WireError};
use cropscode_engine_api::{ContainerSpec, Endpoint, EngineClient, ListContainers, ListImages, RemoveContainer};
use serde_json::{Value, json};

use crate::orchestrator::{CommandAnswer, Event, Orchestrator};
use crate::{Registration, WorkerProcess, WorkerSpec, block_on, start_orchestrator, wait_registered};

/// Written by `tests/env/prepare.sh`: `export DOCKER_SOCK=… PODMAN_SOCK=… REGISTRY=…`.
pub const ENGINES_ENV: &str = "/run/cropscode-test/engines.env";
/// The busybox test image, present in both engines.
pub const BUSYBOX: &str = "cropscode-test/busybox:latest";
/// Busybox plus git, present in both engines.
pub const GIT_IMAGE: &str = "cropscode-test/git:latest";
/// The label carrying a test run's id (not under `cropscode.`, which the worker reserves).
pub const RUN_LABEL: &str = "cropscode-test.run";
/// The default time a test waits for one command's result.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// One of the two engines the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineName {
    /// Docker (`dockerd` on `DOCKER_SOCK`).
    Docker,
    /// Podman's API service (on `PODMAN_SOCK`).
    Podman,
}

impl EngineName {
    /// Both, in the order the benchmark prints them.
    pub const ALL: [EngineName; 2] = [EngineName::Docker, EngineName::Podman];

    /// The engines a benchmark's arguments name (`docker`, `podman`), or both when none.
    pub fn from_args() -> Vec<EngineName> {
        let only: Vec<String> = std::env::args().skip(1).collect();
        EngineName::ALL.into_iter().filter(|e| only.is_empty() || only.iter().any(|o| o == e.as_str())).collect()
    }

    /// `docker` or `podman`, as in `CONTAINER_ENGINE` and `containerEngines`.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineName::Docker => "docker",
            EngineName::Podman => "podman",
        }
    }
}

/// Where the prepared engines listen.
#[derive(Debug, Clone)]
pub struct Engines {
    /// Docker's API socket.
    pub docker_sock: PathBuf,
    /// Podman's API socket.
    pub podman_sock: PathBuf,
    /// The local registry (`127.0.0.1:5000`).
    pub registry: String,
}

impl Engines {
    /// Reads [`ENGINES_ENV`]; panics with what to do when the engines were never prepared
    /// or do not answer.
    pub fn load() -> Engines {
        let text = std::fs::read_to_string(ENGINES_ENV).unwrap_or_else(|e| {
            panic!("{ENGINES_ENV} is missing ({e}): run tests/env/prepare.sh (as root) to start the test engines")
        });
        let vars: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|line| line.trim().strip_prefix("export "))
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        let get = |key: &str| {
            vars.get(key)
                .map(|v| v.to_string())
                .unwrap_or_else(|| panic!("{ENGINES_ENV} has no {key}: run tests/env/prepare.sh again"))
        };
        let engines = Engines {
            docker_sock: get("DOCKER_SOCK").into(),
            podman_sock: get("PODMAN_SOCK").into(),
            registry: get("REGISTRY"),
        };
        for which in EngineName::ALL {
            let socket = engines.socket(which);
            if let Err(e) = block_on(engines.client(which).ping()) {
                panic!(
                    "{} does not answer at {} ({e}): run tests/env/prepare.sh (as root) to start it",
                    which.as_str(),
                    socket.display()
                );
            }
        }
        engines
    }

    /// The socket of `which`.
    pub fn socket(&self, which: EngineName) -> &Path {
        match which {
            EngineName::Docker => &self.docker_sock,
            EngineName::Podman => &self.podman_sock,
        }
    }

    /// A direct client of `which`, bypassing the worker.
    pub fn client(&self, which: EngineName) -> EngineClient {
        EngineClient::new(Endpoint::Unix(self.socket(which).to_path_buf()))
    }

    /// The busybox image as pushed to the local registry (pulled by tests of pull-if-missing).
    pub fn registry_busybox(&self) -> String {
        format!("{}/cropscode-test/busybox:latest", self.registry)
    }
}

impl WorkerSpec {
    /// Binds the worker to one engine: `CONTAINER_ENGINE` plus `DOCKER_HOST` (Docker) or
    /// `CONTAINER_HOST` (Podman) pointing at `socket`.
    pub fn engine(mut self, which: EngineName, socket: &Path) -> WorkerSpec {
        let address = format!("unix://{}", socket.display());
        self.env.retain(|(key, _)| key != "PODMAN_PATH");
        let spec = self.env("CONTAINER_ENGINE", which.as_str());
        match which {
            EngineName::Docker => spec.env("DOCKER_HOST", address),
            EngineName::Podman => spec.env("CONTAINER_HOST", address),
        }
    }

    /// A worker for `url` bound to the prepared engine `which` (see [`WorkerSpec::engine`]).
    pub fn for_engine(url: impl Into<String>, engines: &Engines, which: EngineName) -> WorkerSpec {
        WorkerSpec::new(url).engine(which, engines.socket(which))
    }
}

/// A run id unique to this process, this test and this moment: `<tag>-<engine>-<pid>-<n>-<t>`.
/// Lower case, valid as a container name, a tenant and a label value.
pub fn unique_run(tag: &str, which: EngineName) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() % 1_000_000).unwrap_or(0);
    format!("{tag}-{}-{}-{n}-{t}", which.as_str(), std::process::id()).to_lowercase()
}

/// One test against one engine: an orchestrator, a worker bound to the engine and
/// registered under a worker id unique to the run, and a direct engine client.
/// Dropping it removes every container and image the run created.
pub struct EngineRun {
    /// The engine under test.
    pub which: EngineName,
    /// Where the engines listen.
    pub engines: Engines,
    /// A direct client of the engine (behind the worker's back).
    pub client: EngineClient,
    /// The run id (see [`unique_run`]).
    pub run: String,
    /// The worker's id (unique to the run, so its `container.list-all` is this run's alone).
    pub worker_id: String,
    /// The worker's registration.
    pub registration: Registration,
    /// Image references to remove at the end, besides those labelled with the run.
    images: Mutex<Vec<String>>,
    // Dropped after `Drop::drop` cleaned up: the worker first, then its orchestrator.
    /// The worker.
    pub worker: WorkerProcess,
    /// The local orchestrator the worker is connected to.
    pub orchestrator: Orchestrator,
}

impl EngineRun {
    /// A run against `which` with a default worker.
    pub fn start(which: EngineName, tag: &str) -> EngineRun {
        EngineRun::start_with(which, tag, |spec| spec)
    }

    /// A run against `which` whose worker is started from `customize(spec)`; `spec` is
    /// already bound to the prepared engine and may be re-bound (e.g. to a private socket
    /// with [`WorkerSpec::engine`]).
    pub fn start_with(which: EngineName, tag: &str, customize: impl FnOnce(WorkerSpec) -> WorkerSpec) -> EngineRun {
        let engines = Engines::load();
        let client = engines.client(which);
        sweep_stale_runs(&client);
        let run = unique_run(tag, which);
        let worker_id = format!("w-{run}");
        let orchestrator = start_orchestrator();
        let spec = WorkerSpec::for_engine(orchestrator.ws_url(), &engines, which).worker_id(&worker_id);
        let worker = customize(spec).spawn();
        let registration = match wait_registered(&orchestrator, None, Duration::from_secs(60)) {
            Some(r) => r,
            None => panic!("the worker did not register within 60 s; its log:\n{}", worker.logs()),
        };
        assert_eq!(registration.worker_id, worker_id, "the worker announced the worker id seeded in worker.json");
        assert_eq!(
            registration.register.container_engines.first().map(String::as_str),
            Some(which.as_str()),
            "the worker bound to {} reports it first in containerEngines {:?}",
            which.as_str(),
            registration.register.container_engines
        );
        EngineRun {
            which,
            engines,
            client,
            run,
            worker_id,
            registration,
            images: Mutex::new(Vec::new()),
            worker,
            orchestrator,
        }
    }

    /// A container name unique to the run: `ct-<run>-<suffix>`.
    pub fn name(&self, suffix: &str) -> String {
        format!("ct-{}-{suffix}", self.run)
    }

    /// A tenant unique to the run: `<suffix>-<run>`.
    pub fn tenant(&self, suffix: &str) -> String {
        format!("{suffix}-{}", self.run)
    }

    /// An image tag unique to the run: `cropscode-test/<suffix>-<run>:1`.
    pub fn image_tag(&self, suffix: &str) -> String {
        format!("cropscode-test/{suffix}-{}:1", self.run)
    }

    /// The labels every container or image the test creates carries (`{RUN_LABEL: run}`).
    pub fn labels(&self) -> Value {
        json!({ RUN_LABEL: self.run })
    }

    /// Sends a command through the orchestrator and waits up to [`COMMAND_TIMEOUT`].
    pub fn command(&self, kind: &str, params: Value) -> CommandAnswer {
        self.command_within(kind, params, COMMAND_TIMEOUT)
    }

    /// Sends a command and waits up to `timeout` for its result.
    pub fn command_within(&self, kind: &str, params: Value, timeout: Duration) -> CommandAnswer {
        let sent = params.to_string();
        let started = Instant::now();
        let answer = block_on(self.orchestrator.command(&self.worker_id, kind, params, timeout));
        let took = started.elapsed();
        if took > Duration::from_secs(1) {
            // Shown with the failure output: where a slow test spends its time.
            eprintln!("{} {kind} took {took:?}", self.which.as_str());
        }
        match answer {
            Ok(result) => result,
            Err(e) => panic!("{kind} {sent}: no result after {took:?} ({e:?})"),
        }
    }

    /// Sends a command that must succeed; returns its `result`.
    pub fn ok(&self, kind: &str, params: Value) -> Value {
        let sent = params.to_string();
        let answer = self.command(kind, params);
        match answer.outcome() {
            Ok(value) => value.clone(),
            Err(e) => panic!("{kind} {sent} failed: {} {}", e.code, e.message),
        }
    }

    /// Sends a command that must fail; returns its error.
    pub fn fails(&self, kind: &str, params: Value) -> WireError {
        let sent = params.to_string();
        let answer = self.command(kind, params);
        match answer.outcome() {
            Ok(value) => panic!("{kind} {sent} succeeded with {value}, expected an error"),
            Err(e) => e.clone(),
        }
    }

    /// Sends a command that must fail with `code` (`not_found`, `conflict`, …); returns the error.
    pub fn fails_with(&self, code: &str, kind: &str, params: Value) -> WireError {
        let sent = params.to_string();
        let error = self.fails(kind, params);
        assert_eq!(error.code.as_str(), code, "{kind} {sent}: {}", error.message);
        error
    }

    /// Creates a sleeping busybox container named [`EngineRun::name`]`(suffix)` for
    /// `tenant` through the worker (labelled with the run) and returns its full id.
    pub fn create(&self, suffix: &str, tenant: &str) -> String {
        let created = self.ok(
            "container.create",
            json!({
                "image": BUSYBOX,
                "tenant": tenant,
                "name": self.name(suffix),
                "command": ["sleep", "3600"],
                "labels": self.labels(),
                "pull": "never",
            }),
        );
        created["containerId"].as_str().expect("containerId is a string").to_string()
    }

    /// [`EngineRun::create`], then `container.start`; returns the full id.
    pub fn create_running(&self, suffix: &str, tenant: &str) -> String {
        let id = self.create(suffix, tenant);
        self.ok("container.start", json!({ "containerId": id, "tenant": tenant }));
        id
    }

    /// Creates and starts a container directly on the engine, behind the worker's back:
    /// labelled only with the run and `extra` labels. Returns its full id.
    pub fn unmanaged(&self, suffix: &str, extra: &[(&str, &str)]) -> String {
        let mut labels = BTreeMap::from([(RUN_LABEL.to_string(), self.run.clone())]);
        for (k, v) in extra {
            labels.insert(k.to_string(), v.to_string());
        }
        let spec = ContainerSpec {
            image: BUSYBOX.to_string(),
            cmd: Some(vec!["sleep".into(), "3600".into()]),
            labels,
            ..ContainerSpec::default()
        };
        block_on(async {
            let created = self.client.create_container(Some(&self.name(suffix)), &spec).await.expect("direct create");
            self.client.start_container(&created.id).await.expect("direct start");
            created.id
        })
    }

    /// `GET <path>` on the engine's socket, raw (`/containers/<id>/json`): the status and
    /// the JSON body (`Null` when the body is not JSON).
    pub fn engine_get(&self, path: &str) -> (u16, Value) {
        engine_get(self.engines.socket(self.which), path)
    }

    /// The engine's inspect of a container, `None` when it does not exist.
    pub fn inspect(&self, id: &str) -> Option<Value> {
        match self.engine_get(&format!("/containers/{id}/json")) {
            (200, body) => Some(body),
            (404, _) => None,
            (status, body) => panic!("inspecting {id}: HTTP {status} {body}"),
        }
    }

    /// The engine's state of a container (`running`, `exited`, …), `None` when it does not exist.
    pub fn state(&self, id: &str) -> Option<String> {
        self.inspect(id).map(|v| v["State"]["Status"].as_str().unwrap_or_default().to_string())
    }

    /// Remembers an image reference to remove at the end of the run.
    pub fn track_image(&self, reference: &str) {
        self.images.lock().unwrap_or_else(|p| p.into_inner()).push(reference.to_string());
    }

    /// The heartbeats received from the worker so far, oldest first.
    pub fn heartbeats(&self) -> Vec<(Instant, Heartbeat)> {
        self.orchestrator
            .events()
            .into_iter()
            .filter_map(|t| match t.event {
                Event::Heartbeat { worker_id: Some(id), heartbeat, .. } if id == self.worker_id => {
                    Some((t.at, heartbeat))
                }
                _ => None,
            })
            .collect()
    }

    /// Waits until a heartbeat arriving after `since` has `containersRunning == expected`;
    /// panics with the figures seen otherwise.
    pub fn wait_containers_running(&self, since: Instant, expected: u32, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let seen: Vec<u32> = self
                .heartbeats()
                .into_iter()
                .filter(|(at, _)| *at > since)
                .map(|(_, h)| h.containers_running)
                .collect();
            if seen.contains(&expected) {
                return;
            }
            if Instant::now() >= deadline {
                panic!("no heartbeat with containersRunning {expected} within {timeout:?}; saw {seen:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Removes every container and image of the run (and every container its worker
    /// labelled as its own). Called on drop; idempotent.
    pub fn cleanup(&self) {
        let images = std::mem::take(&mut *self.images.lock().unwrap_or_else(|p| p.into_inner()));
        block_on(async {
            let filters = [format!("{RUN_LABEL}={}", self.run), format!("cropscode.worker={}", self.worker_id)];
            for filter in filters {
                let mine = ListContainers { all: true, labels: vec![filter], ..Default::default() };
                if let Ok(containers) = self.client.list_containers(&mine).await {
                    for c in containers {
                        let _ =
                            self.client.remove_container(&c.id, RemoveContainer { force: true, volumes: true }).await;
                    }
                }
            }
            let labelled = ListImages { labels: vec![format!("{RUN_LABEL}={}", self.run)], ..Default::default() };
            let mut references = images;
            if let Ok(found) = self.client.list_images(&labelled).await {
                references.extend(found.into_iter().map(|i| i.id));
            }
            for reference in references {
                let _ = self.client.remove_image(&reference, true).await;
            }
        });
    }
}

impl Drop for EngineRun {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Removes test containers left by runs that were killed before their cleanup (older
/// than an hour: no test runs that long, so none of them belongs to a live test).
fn sweep_stale_runs(client: &EngineClient) {
    let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else { return };
    let cutoff = now.as_secs() as i64 - 3600;
    block_on(async {
        let stale = ListContainers { all: true, labels: vec![RUN_LABEL.to_string()], ..Default::default() };
        let Ok(containers) = client.list_containers(&stale).await else { return };
        for c in containers.into_iter().filter(|c| c.created < cutoff) {
            let _ = client.remove_container(&c.id, RemoveContainer { force: true, volumes: true }).await;
        }
    });
}

/// `GET <path>` on an engine socket with a one-shot HTTP/1.0 request (no keep-alive, no
/// chunking to undo): the status and the JSON body (`Null` when not JSON). Panics when
/// the socket does not answer.
pub fn engine_get(socket: &Path, path: &str) -> (u16, Value) {
    try_engine_get(socket, path).unwrap_or_else(|e| panic!("GET {path} on {}: {e}", socket.display()))
}

/// [`engine_get`], with a socket that does not answer as an error.
pub fn try_engine_get(socket: &Path, path: &str) -> std::io::Result<(u16, Value)> {
    let mut stream = connect_engine(socket)?;
    write!(stream, "GET /v1.41{path} HTTP/1.0\r\nHost: engine\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

#[cfg(unix)]
fn connect_engine(socket: &Path) -> std::io::Result<UnixStream> {
    let stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(stream)
}

/// The harness drives the engines over their unix sockets, so it runs its engine tests on
/// Linux; elsewhere (the Windows and macOS type-checks of cross/platforms.sh) it compiles,
/// and an engine request is an error.
#[cfg(not(unix))]
fn connect_engine(socket: &Path) -> std::io::Result<std::fs::File> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        format!("{}: the test harness talks to engines over unix sockets only", socket.display()),
    ))
}

/// Defines `#[test] fn docker()` and `#[test] fn podman()` running `body(&EngineRun)`
/// against each engine, with the run tagged by the body's name. An optional second
/// argument customizes the worker (`|spec| spec.env("HEARTBEAT_INTERVAL", "1s")`).
#[macro_export]
macro_rules! engine_tests {
    ($body:ident) => {
        $crate::engine_tests!($body, |spec| spec);
    };
    ($body:ident, $customize:expr) => {
        #[test]
        fn docker() {
            let run = $crate::EngineRun::start_with($crate::EngineName::Docker, stringify!($body), $customize);
            $body(&run);
        }

        #[test]
        fn podman() {
            let run = $crate::EngineRun::start_with($crate::EngineName::Podman, stringify!($body), $customize);
            $body(&run);
        }
    };
}

/// Standard base64 with padding (for `outputEncoding: base64` and file contents): the worker's own.
pub fn base64_encode(bytes: &[u8]) -> String {
    cropscode_core::protocol::commands::base64_encode(bytes)
}

/// Decodes the worker's base64; panics on anything else.
pub fn base64_decode(text: &str) -> Vec<u8> {
    cropscode_core::protocol::commands::base64_decode(text).unwrap_or_else(|e| panic!("not base64 ({e}): {text:?}"))
}

/// `podman system service --time=0` on a private socket, killed on drop: an engine a
/// test may stop and start (the shared engines serve other tests, so they never stop).
pub struct PodmanService {
    socket: PathBuf,
    child: Option<Child>,
}

impl PodmanService {
    /// Starts it on `socket` and waits until it answers.
    pub fn start(socket: &Path) -> PodmanService {
        let mut service = PodmanService { socket: socket.to_path_buf(), child: None };
        service.restart();
        service
    }

    /// Kills it (if running) and starts it again on the same socket.
    pub fn restart(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.socket);
        let child = Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", self.socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn podman system service (run tests/env/prepare.sh to install podman)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if try_engine_get(&self.socket, "/_ping").is_ok_and(|(status, _)| status == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("podman system service did not answer on {} within 30 s", self.socket.display());
    }

    /// Kills the service outright (SIGKILL: the engine crashes, it does not say goodbye).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for len in 0..10 {
            let data: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            assert_eq!(base64_decode(&base64_encode(&data)), data);
        }
        assert_eq!(base64_encode(b"#!/bin/sh\n"), "IyEvYmluL3NoCg==");
    }
}
