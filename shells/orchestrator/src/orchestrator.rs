//! The [`Orchestrator`] handle and the state its tasks share.
//!
//! `start` binds the listeners and spawns their accept loops on smol's global
//! executor; each accepted socket gets a task of its own (`connection.rs`,
//! `http.rs`). All of them hold an `Arc<Shared>`; the tasks themselves are
//! owned by `Shared::tasks`, so `stop` (or dropping the last `Orchestrator`
//! clone) can cancel every one of them, which closes every socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_net::TcpListener;
use async_tungstenite::tungstenite::Message;
use serde_json::Value;
use smol::{Task, Timer};

use crate::event::EventLog;
use crate::registry::{Outbound, Registry};
use crate::{
    Behavior, CommandResult, Event, OrchestratorConfig, OrchestratorError, TimedEvent, WorkerInfo, connection, http,
    lock, require_loopback, tls,
};

/// How long `send_text`/`send_binary` wait for the frame to be written.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How many events `wait_for` copies out of the log at a time.
const WAIT_BATCH: usize = 256;

/// State shared by the handle and every task.
pub(crate) struct Shared {
    tokens: Vec<String>,
    pub(crate) registry: Mutex<Registry>,
    log: Mutex<EventLog>,
    log_changed: event_listener::Event,
    behavior: Mutex<Behavior>,
    pub(crate) behavior_changed: event_listener::Event,
    tasks: Mutex<TaskSet>,
    pub(crate) started_at: Instant,
}

/// Every task the orchestrator spawned; finished ones are pruned as new ones arrive.
#[derive(Default)]
struct TaskSet {
    listeners: Vec<Task<()>>,
    connections: HashMap<u64, Task<()>>,
    next_key: u64,
    closed: bool,
}

impl Shared {
    /// Whether `token` is one of the accepted bearer tokens (compared in constant time).
    pub(crate) fn accepts_token(&self, token: &str) -> bool {
        self.tokens
            .iter()
            .fold(false, |found, accepted| found | constant_time_eq(accepted.as_bytes(), token.as_bytes()))
    }

    /// Whether `text` contains one of the accepted tokens.
    pub(crate) fn mentions_token(&self, text: &str) -> bool {
        self.tokens.iter().any(|t| !t.is_empty() && text.contains(t.as_str()))
    }

    pub(crate) fn record(&self, event: Event) {
        lock(&self.log).push(event);
        self.log_changed.notify(usize::MAX);
    }

    pub(crate) fn behavior(&self) -> Behavior {
        *lock(&self.behavior)
    }

    /// Keeps a task until it finishes or the orchestrator stops (then it is cancelled at once).
    pub(crate) fn keep_task(&self, task: Task<()>) {
        let mut tasks = lock(&self.tasks);
        if tasks.closed {
            return; // dropping the task cancels it
        }
        tasks.connections.retain(|_, t| !t.is_finished());
        tasks.next_key += 1;
        let key = tasks.next_key;
        tasks.connections.insert(key, task);
    }

    pub(crate) fn events_since(&self, since: u64, max: usize) -> (Vec<TimedEvent>, u64) {
        let log = lock(&self.log);
        (log.since(since, max), log.next_seq())
    }

    pub(crate) fn workers(&self) -> Vec<WorkerInfo> {
        lock(&self.registry).workers()
    }

    pub(crate) async fn wait_for(&self, pred: impl Fn(&Event) -> bool, timeout: Duration) -> Option<TimedEvent> {
        let deadline = Instant::now() + timeout;
        let mut cursor = 0;
        loop {
            // Listen before looking, so an event pushed in between still wakes us.
            let listener = self.log_changed.listen();
            // In batches, outside the lock: the predicate may call back into the orchestrator,
            // and copying the whole log at once could mean tens of MiB of frames.
            loop {
                let (fresh, _) = self.events_since(cursor, WAIT_BATCH);
                let Some(last) = fresh.last() else { break };
                cursor = last.seq + 1;
                if let Some(found) = fresh.into_iter().find(|e| pred(&e.event)) {
                    return Some(found);
                }
            }
            let timed_out = smol::future::or(
                async {
                    listener.await;
                    false
                },
                async {
                    Timer::at(deadline).await;
                    true
                },
            )
            .await;
            if timed_out {
                return None;
            }
        }
    }

    pub(crate) async fn command_with_id(
        &self,
        worker_id: &str,
        id: &str,
        kind: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<CommandResult, OrchestratorError> {
        let text = serde_json::json!({ "type": kind, "id": id, "params": params }).to_string();
        let (key, reply) = {
            let mut registry = lock(&self.registry);
            if registry.stopped {
                return Err(OrchestratorError::Stopped);
            }
            registry.add_waiter(id)
        };
        let exchange = async {
            self.send(worker_id, Message::text(text)).await?;
            // The sender is dropped only when the orchestrator stops.
            reply.recv().await.map_err(|_| OrchestratorError::Stopped)
        };
        let outcome = smol::future::or(exchange, async {
            Timer::after(timeout).await;
            Err(OrchestratorError::Timeout)
        })
        .await;
        lock(&self.registry).remove_waiter(id, key);
        outcome
    }

    pub(crate) async fn command(
        &self,
        worker_id: &str,
        kind: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<CommandResult, OrchestratorError> {
        let id = lock(&self.registry).next_command_id();
        self.command_with_id(worker_id, &id, kind, params, timeout).await
    }

    /// Queues a frame for the worker's connection and waits until it was written.
    async fn send(&self, worker_id: &str, message: Message) -> Result<(), OrchestratorError> {
        let outbound = {
            let registry = lock(&self.registry);
            if registry.stopped {
                return Err(OrchestratorError::Stopped);
            }
            registry.outbound(worker_id).ok_or_else(|| OrchestratorError::UnknownWorker(worker_id.to_string()))?
        };
        let (written, was_written) = async_channel::bounded(1);
        outbound.send(Outbound { message, written }).await.map_err(|_| OrchestratorError::Disconnected)?;
        match was_written.recv().await {
            Ok(true) => Ok(()),
            _ => Err(OrchestratorError::Disconnected),
        }
    }

    async fn send_with_timeout(&self, worker_id: &str, message: Message) -> Result<(), OrchestratorError> {
        smol::future::or(self.send(worker_id, message), async {
            Timer::after(SEND_TIMEOUT).await;
            Err(OrchestratorError::Timeout)
        })
        .await
    }

    /// Cancels every task without waiting (used when the last handle is dropped).
    fn abort_tasks(&self) {
        let mut tasks = lock(&self.tasks);
        tasks.closed = true;
        tasks.listeners.clear();
        tasks.connections.clear();
    }
}

/// A running local orchestrator. Cheap to clone; dropping the last clone stops it.
#[derive(Clone)]
pub struct Orchestrator {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    ws_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    tls: bool,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.abort_tasks();
    }
}

impl Orchestrator {
    /// Binds the listeners (loopback only, else `InvalidInput`) and starts serving.
    pub async fn start(config: OrchestratorConfig) -> std::io::Result<Orchestrator> {
        require_loopback(config.ws_addr, "ws_addr")?;
        if let Some(addr) = config.http_addr {
            require_loopback(addr, "http_addr")?;
        }
        let acceptor = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let ws_listener = TcpListener::bind(config.ws_addr).await?;
        let ws_addr = ws_listener.local_addr()?;
        let http_listener = match config.http_addr {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let http_addr = http_listener.as_ref().map(TcpListener::local_addr).transpose()?;

        let shared = Arc::new(Shared {
            tokens: config.tokens,
            registry: Mutex::new(Registry::default()),
            log: Mutex::new(EventLog::new()),
            log_changed: event_listener::Event::new(),
            behavior: Mutex::new(Behavior::Normal),
            behavior_changed: event_listener::Event::new(),
            tasks: Mutex::new(TaskSet::default()),
            started_at: Instant::now(),
        });
        let tls = acceptor.is_some();
        let mut listeners = vec![smol::spawn(connection::accept_loop(shared.clone(), ws_listener, acceptor))];
        if let Some(listener) = http_listener {
            listeners.push(smol::spawn(http::accept_loop(shared.clone(), listener)));
        }
        lock(&shared.tasks).listeners = listeners;

        let orchestrator = Orchestrator { handle: Arc::new(Handle { shared, ws_addr, http_addr, tls }) };
        tracing::info!(ws_url = %orchestrator.ws_url(), http_url = ?orchestrator.http_url(), "local orchestrator listening");
        Ok(orchestrator)
    }

    /// The URL a worker connects to: `ws://127.0.0.1:PORT/worker`, or `wss://localhost:PORT/worker`
    /// with TLS (the certificate must name `localhost`). Any path is accepted.
    pub fn ws_url(&self) -> String {
        let port = self.handle.ws_addr.port();
        if self.handle.tls {
            format!("wss://localhost:{port}/worker")
        } else {
            format!("ws://{}/worker", self.handle.ws_addr)
        }
    }

    /// The bound WebSocket address (with the real port when 0 was asked for).
    pub fn ws_addr(&self) -> SocketAddr {
        self.handle.ws_addr
    }

    /// `http://127.0.0.1:PORT` of the JSON endpoint, when one was configured.
    pub fn http_url(&self) -> Option<String> {
        self.handle.http_addr.map(|addr| format!("http://{addr}"))
    }

    /// The bound HTTP address, when one was configured.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.handle.http_addr
    }

    /// Changes how connections are treated from now on (see [`Behavior`]).
    pub fn set_behavior(&self, behavior: Behavior) {
        *lock(&self.handle.shared.behavior) = behavior;
        self.handle.shared.behavior_changed.notify(usize::MAX);
    }

    /// The current behavior.
    pub fn behavior(&self) -> Behavior {
        self.handle.shared.behavior()
    }

    /// Every event still in the log (the last [`crate::MAX_EVENTS`]), oldest first.
    pub fn events(&self) -> Vec<TimedEvent> {
        self.handle.shared.events_since(0, usize::MAX).0
    }

    /// The events with `seq >= since` still in the log, oldest first.
    pub fn events_since(&self, since: u64) -> Vec<TimedEvent> {
        self.handle.shared.events_since(since, usize::MAX).0
    }

    /// The first event, past (still in the log) or future, that matches `pred`;
    /// `None` after `timeout`. Wakes on each new event, never polls.
    pub async fn wait_for(&self, pred: impl Fn(&Event) -> bool, timeout: Duration) -> Option<TimedEvent> {
        self.handle.shared.wait_for(pred, timeout).await
    }

    /// A live feed of events from now on (not the past ones). It ends when the
    /// orchestrator stops; a receiver that falls thousands of events behind misses some.
    pub fn subscribe(&self) -> async_channel::Receiver<TimedEvent> {
        lock(&self.handle.shared.log).subscribe()
    }

    /// The connected, registered workers, in connection order.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.handle.shared.workers()
    }

    /// The connected, registered worker with this id.
    pub fn worker(&self, worker_id: &str) -> Option<WorkerInfo> {
        self.workers().into_iter().find(|w| w.worker_id == worker_id)
    }

    /// Sends command `kind` with a fresh id (`c-<n>`) and waits for its `result`.
    ///
    /// `progress` frames for the id are collected into [`CommandResult::progress`]
    /// (and, like every frame, recorded as events). If the worker's connection
    /// drops meanwhile the wait goes on: a reconnected worker sends results it
    /// held. Fails at once with `UnknownWorker` if no such worker is connected.
    pub async fn command(
        &self,
        worker_id: &str,
        kind: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<CommandResult, OrchestratorError> {
        self.handle.shared.command(worker_id, kind, params, timeout).await
    }

    /// Like [`Orchestrator::command`] with a chosen id (e.g. to re-send one).
    /// Several calls may wait on one id at once; each gets the next result for it.
    pub async fn command_with_id(
        &self,
        worker_id: &str,
        id: &str,
        kind: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<CommandResult, OrchestratorError> {
        self.handle.shared.command_with_id(worker_id, id, kind, params, timeout).await
    }

    /// Sends a raw text frame to the worker and waits until it was written.
    pub async fn send_text(&self, worker_id: &str, text: String) -> Result<(), OrchestratorError> {
        self.handle.shared.send_with_timeout(worker_id, Message::text(text)).await
    }

    /// Sends a raw binary frame to the worker and waits until it was written.
    pub async fn send_binary(&self, worker_id: &str, bytes: Vec<u8>) -> Result<(), OrchestratorError> {
        self.handle.shared.send_with_timeout(worker_id, Message::binary(bytes)).await
    }

    /// Simulates the orchestrator dying: closes the listeners and drops every
    /// connection without a close frame, ends waiting commands (`Stopped`) and
    /// live feeds. When it returns the ports are free, so a new orchestrator
    /// can start on the same [`Orchestrator::ws_addr`]. The event log stays readable.
    pub async fn stop(&self) {
        let shared = &self.handle.shared;
        {
            let mut registry = lock(&shared.registry);
            registry.stopped = true;
            registry.drop_waiters();
        }
        let (listeners, connections) = {
            let mut tasks = lock(&shared.tasks);
            tasks.closed = true;
            (std::mem::take(&mut tasks.listeners), std::mem::take(&mut tasks.connections))
        };
        // Listeners first, so no new connection task appears while the others are cancelled.
        for task in listeners {
            task.cancel().await;
        }
        for (_, task) in connections {
            task.cancel().await;
        }
        lock(&shared.log).close_subscribers();
        tracing::info!(ws_addr = %self.handle.ws_addr, "local orchestrator stopped");
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
