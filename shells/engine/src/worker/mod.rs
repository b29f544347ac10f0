//! The worker's engine: core's [`Engine`] trait implemented over [`EngineClient`].
//!
//! A command flows through one path:
//!
//! ```text
//!  Command ──► WorkerEngine::execute ──► Execution (stream: Progress…, Done)
//!                 │
//!                 ├─ Shared::client()      the selected engine (selection.rs), re-discovered
//!                 │                         while none answers
//!                 ├─ ownership.rs          containerId (+ tenant) → a container this worker owns,
//!                 │                         else `not_found` (never reveals other containers)
//!                 ├─ create / lifecycle / exec / setup / images   one module per family
//!                 ├─ crate::streams        terminals, displays, background execs
//!                 └─ Shared::observe()     engine gone / back, logged once per transition;
//!                                          lifecycle commands refresh the running count
//! ```
//!
//! The security floor judges the typed command before it reaches this module
//! ([`PolicedEngine`](cropscode_core::policy::PolicedEngine)), which gives the floor to
//! the engine once ([`Engine::set_floor`]) for the checks only the engine can make (the
//! image's or the container's user). The floor is kept in `selection::Shared`, so it holds for
//! every clone of the engine. [`ContainerCreate`](cropscode_core::protocol::commands::ContainerCreate)
//! is the one normalized form of a container request, and `create::container_spec`
//! translates it field for field, adding only the worker's labels and the namespaced
//! name, so what the policy approved is exactly what the engine is asked for.
//!
//! Background work (the running-container count following the engine's events, the
//! supervised `podman system service`) runs on smol's global executor and stops when the
//! last clone of the [`WorkerEngine`] is dropped or [`WorkerEngine::shutdown`] is called.

mod create;
mod exec;
mod images;
mod lifecycle;
mod naming;
mod ownership;
mod podman_service;
mod pulled;
mod running;
mod selection;
mod setup;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use cropscode_core::policy::SecurityFloor;
use cropscode_core::protocol::{Command, ErrorCode, WireError};
use cropscode_core::stream::StreamId;
use cropscode_core::{Channel, Engine, StreamRead, StreamWrite};
use cropscode_engine_api::{Endpoint, EngineClient, EngineKind};
use serde::Serialize;
use serde_json::Value;

use crate::execution::{Execution, ProgressSink};
use crate::options::EngineOptions;
use crate::outcome::{Failure, Outcome};
use crate::streams::Streams;

pub use naming::engine_name;
pub use selection::{DetectedEngine, Detection, detect};

use podman_service::PodmanService;
use selection::Shared;

/// Executes the protocol's commands on a Docker or Podman engine. Cheap to clone.
#[derive(Clone)]
pub struct WorkerEngine {
    shared: Arc<Shared>,
    background: Arc<Background>,
    /// Images this worker pulled (the ones it built carry a label instead).
    pulled: Arc<pulled::PulledImages>,
    /// Terminals, displays and background execs (`crate::streams`).
    streams: Streams,
}

/// Tasks that live as long as the engine: cancelled (and the Podman child killed) on drop.
struct Background {
    tasks: Mutex<Vec<smol::Task<()>>>,
    podman: Mutex<Option<PodmanService>>,
}

impl std::fmt::Debug for WorkerEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerEngine").field("worker_id", &self.shared.worker_id()).finish_non_exhaustive()
    }
}

impl WorkerEngine {
    /// Finds the engines (or uses `options.endpoint`), starts a supervised Podman service
    /// when Podman is installed but none answers, selects one engine, and starts following
    /// its events. Never fails: without an engine, commands answer `engine_unavailable`
    /// and discovery is tried again on the next command.
    pub async fn start(options: EngineOptions) -> WorkerEngine {
        let (shared, podman) = Shared::start(&options).await;
        let shared = Arc::new(shared);
        let follow = smol::spawn(running::follow(shared.clone(), options.resync_interval));
        let streams = Streams::new(options.data_dir.as_deref());
        // A container of this worker started: background output a relay kept there is taken.
        let relays = smol::spawn({
            let (shared, background) = (shared.clone(), streams.background.clone());
            async move {
                let started = shared.started_containers();
                while let Ok(id) = started.recv().await {
                    if let Ok(client) = shared.client().await {
                        background.container_started(&client, &id);
                    }
                }
            }
        });
        let engine = WorkerEngine {
            shared,
            background: Arc::new(Background { tasks: Mutex::new(vec![follow, relays]), podman: Mutex::new(podman) }),
            pulled: Arc::new(pulled::PulledImages::load(options.data_dir.as_deref())),
            streams,
        };
        // Background output an earlier worker was copying goes on being copied.
        if let Some(client) = engine.client().await {
            engine.streams.background.resume(&client);
        }
        engine
    }

    /// A worker engine on one known engine, e.g. in tests: `start` with only `endpoint` and
    /// `worker_id` set.
    pub async fn with_endpoint(endpoint: Endpoint, worker_id: &str) -> WorkerEngine {
        let options =
            EngineOptions { endpoint: Some(endpoint), worker_id: Some(worker_id.to_owned()), ..Default::default() };
        WorkerEngine::start(options).await
    }

    /// Sets the worker's id (what [`Engine::registered`] does on `worker.registered`).
    /// Containers are labelled with it and only containers carrying it are this worker's.
    pub fn set_worker_id(&self, worker_id: &str) {
        self.shared.set_worker_id(worker_id);
    }

    /// The worker's id, once known.
    pub fn worker_id(&self) -> Option<String> {
        self.shared.worker_id()
    }

    /// Engines found answering at startup, the serving one first, for `containerEngines`
    /// (`["podman", "docker"]`).
    pub fn engines(&self) -> Vec<String> {
        self.shared.engine_names()
    }

    /// The engine serving commands, when one answers.
    pub async fn serving(&self) -> Option<(EngineKind, Endpoint)> {
        self.shared.serving().await
    }

    /// Asks the serving engine whether it answers now (`GET /_ping`): what serves
    /// (`podman at unix:///…`), or why none does. For health checks; the outcome is
    /// noted like a command's (a transition is logged once).
    pub async fn check(&self) -> Result<String, String> {
        let client = self.shared.client().await.map_err(|e| e.into_wire().message)?;
        match client.ping().await {
            Ok(()) => {
                self.shared.mark_up();
                let kind = self.shared.serving().await.map_or_else(|| "engine".to_owned(), |(k, _)| k.to_string());
                Ok(format!("{kind} at {}", client.endpoint()))
            }
            Err(error) => {
                if error.is_unavailable() {
                    self.shared.mark_down(&error);
                }
                Err(error.to_string())
            }
        }
    }

    /// The client of the serving engine (for tests and benchmarks).
    pub async fn client(&self) -> Option<EngineClient> {
        self.shared.client().await.ok()
    }

    /// The process id of the `podman system service` the worker supervises, if it runs one.
    pub fn supervised_podman_pid(&self) -> Option<u32> {
        let podman = self.background.podman.lock().ok()?;
        podman.as_ref().map(PodmanService::pid).filter(|&pid| pid != 0)
    }

    /// Recounts the running managed containers now (the count is otherwise kept up to
    /// date by the engine's events and after each lifecycle command).
    pub async fn refresh_running(&self) -> Result<u32, WireError> {
        running::refresh(&self.shared).await.map_err(|e| e.to_wire())
    }

    /// Stops the background tasks and the supervised Podman service, and waits for them.
    pub async fn shutdown(self) {
        // Ends every terminal and display: nothing is left running in the containers.
        self.streams.shutdown().await;
        let tasks = std::mem::take(&mut *self.background.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            task.cancel().await;
        }
        let podman = self.background.podman.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(podman) = podman {
            podman.stop().await;
        }
    }

    async fn run(&self, command: Command, progress: &ProgressSink) -> Result<Value, WireError> {
        let name = command.name();
        let outcome = match command {
            Command::ContainerCreate(p) => json(self.create(p, progress).await),
            Command::ContainerSetup(p) => json(self.setup(p).await),
            Command::ContainerStart(p) => json(self.start_container(p).await),
            Command::ContainerStop(p) => json(self.stop_container(p).await),
            Command::ContainerRemove(p) => json(self.remove_container(p).await),
            Command::ContainerList(p) => json(self.list(Some(&p.tenant), p.running_only).await),
            Command::ContainerListAll(p) => json(self.list(None, p.running_only).await),
            Command::ContainerExec(p) => json(self.exec(p).await),
            Command::ImagesList(p) => json(self.images_list(p).await),
            Command::ImageCheck(p) => json(self.image_check(p).await),
            Command::ImageDelete(p) => json(self.image_delete(p).await),
            Command::ImageBuild(p) => json(self.image_build(p, progress).await),
            Command::ContainerExecBackground(p) => json(self.streams.background.start(self, p).await),
            Command::ContainerExecBackgroundKill(p) => json(self.streams.background.kill(self, p).await),
            Command::ContainerExecBackgroundCapture(p) => json(self.streams.background.capture(self, p).await),
            Command::TerminalResize(p) => json(self.streams.live.resize_terminal(p).await),
            // The core answers these itself (`cropscode_core::stream`); opening goes to `open_stream`.
            Command::TerminalOpen(_)
            | Command::TerminalInput(_)
            | Command::TerminalClose(_)
            | Command::DisplayOpen(_)
            | Command::DisplayClose(_) => {
                Err(Failure::wire(ErrorCode::Internal, format!("`{name}` is answered by the worker's stream registry")))
            }
        };
        self.shared.observe(&outcome);
        outcome.map_err(Failure::into_wire)
    }
}

impl Engine for WorkerEngine {
    type Execution<'a> = Execution<'a>;

    fn execute(&self, command: Command) -> Execution<'_> {
        let progress = ProgressSink::default();
        let sink = progress.clone();
        Execution::new(progress, Box::pin(async move { self.run(command, &sink).await }))
    }

    fn open_stream(&self, stream: StreamId, command: Command) -> Execution<'_> {
        let work = async move {
            let opened = match command {
                Command::TerminalOpen(p) => self.streams.live.open_terminal(self, stream, p).await,
                Command::DisplayOpen(p) => self.streams.live.open_display(self, stream, p).await,
                other => Err(Failure::wire(ErrorCode::Internal, format!("`{}` opens no stream", other.name()))),
            };
            let outcome = opened.map(|()| Value::Null);
            self.shared.observe(&outcome);
            outcome.map_err(Failure::into_wire)
        };
        Execution::new(ProgressSink::default(), Box::pin(work))
    }

    fn poll_stream_read(&self, channel: Channel, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<StreamRead> {
        self.streams.live.poll_read(channel.get(), cx, buf)
    }

    fn poll_stream_write(&self, channel: Channel, cx: &mut Context<'_>, data: &[u8]) -> Poll<StreamWrite> {
        self.streams.live.poll_write(channel.get(), cx, data)
    }

    fn close_stream(&self, channel: Channel) {
        self.streams.live.close(channel.get())
    }

    /// Kept in the state every clone shares (`selection::Shared`): whichever clone executes
    /// a command checks under the floor given here.
    fn set_floor(&mut self, floor: SecurityFloor) {
        self.shared.set_floor(floor);
    }

    fn registered(&self, worker_id: &str) {
        self.set_worker_id(worker_id);
    }

    /// Kept by the event follower and after each lifecycle command; never asks the engine.
    fn containers_running(&self) -> Option<u32> {
        Some(self.shared.running.load(Ordering::Relaxed))
    }
}

fn json<T: Serialize>(outcome: Outcome<T>) -> Outcome<Value> {
    outcome.and_then(|value| {
        serde_json::to_value(value).map_err(|e| Failure::wire(ErrorCode::Internal, format!("encoding the result: {e}")))
    })
}
