//! The state every task of an orchestrator shares, and the small helpers they
//! all use.
//!
//! The [`Orchestrator`](crate::Orchestrator) handle, each worker connection
//! task (`connection.rs`) and each HTTP task (`http.rs`) hold an
//! `Arc<Shared>`: the token list, the HTTP endpoint's secret, the [`Registry`]
//! of connections and waiting commands, the [`EventLog`], the console's
//! terminal [`Relay`], the current [`Behavior`] and the set of spawned tasks.
//! This module imports only the leaf modules (`registry`, `event`, `relay`,
//! `config`, `error`) and none of the modules that use it, so the crate's
//! module graph has no loop (see the crate doc).
//!
//! The tasks are owned by `Shared::tasks`, so `stop` (or dropping the last
//! handle) can cancel every one of them, which closes every socket.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use serde_json::Value;
use smol::{Task, Timer};

use crate::config::Behavior;
use crate::error::OrchestratorError;
use crate::event::{Event, EventLog, TimedEvent};
use crate::registry::{CommandAnswer, Outbound, Registry, WorkerInfo};
use crate::relay::Relay;

/// How long `send_text`/`send_binary` wait for the frame to be written.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How many events `wait_for` copies out of the log at a time.
const WAIT_BATCH: usize = 256;

/// State shared by the handle and every task.
pub(crate) struct Shared {
    tokens: Vec<String>,
    /// The HTTP endpoint's and the console's secret (never logged, never in an answer).
    http_secret: String,
    /// Whether `POST /test/drop-worker-connections` is served.
    pub(crate) test_hooks: bool,
    pub(crate) relay: Mutex<Relay>,
    pub(crate) registry: Mutex<Registry>,
    log: Mutex<EventLog>,
    log_changed: event_listener::Event,
    behavior: Mutex<Behavior>,
    pub(crate) behavior_changed: event_listener::Event,
    tasks: Mutex<TaskSet>,
    pub(crate) started_at: Instant,
    /// `gateway.url` of every `worker.registered`.
    pub(crate) gateway_url: Option<String>,
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
    pub(crate) fn new(tokens: Vec<String>, http_secret: String, test_hooks: bool) -> Shared {
        Shared {
            tokens,
            http_secret,
            test_hooks,
            relay: Mutex::new(Relay::new()),
            registry: Mutex::new(Registry::default()),
            log: Mutex::new(EventLog::new()),
            log_changed: event_listener::Event::new(),
            behavior: Mutex::new(Behavior::Normal),
            behavior_changed: event_listener::Event::new(),
            tasks: Mutex::new(TaskSet::default()),
            started_at: Instant::now(),
            gateway_url: None,
        }
    }

    /// Whether `token` is one of the accepted bearer tokens (compared in constant time).
    pub(crate) fn accepts_token(&self, token: &str) -> bool {
        self.tokens
            .iter()
            .fold(false, |found, accepted| found | constant_time_eq(accepted.as_bytes(), token.as_bytes()))
    }

    /// Whether `presented` is the HTTP endpoint's secret (compared in constant time).
    pub(crate) fn accepts_http_secret(&self, presented: &str) -> bool {
        constant_time_eq(self.http_secret.as_bytes(), presented.as_bytes())
    }

    /// The secret itself, for the handle's accessor (the one place it leaves this state).
    pub(crate) fn http_secret(&self) -> &str {
        &self.http_secret
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

    pub(crate) fn set_behavior(&self, behavior: Behavior) {
        *lock(&self.behavior) = behavior;
        self.behavior_changed.notify(usize::MAX);
    }

    /// Keeps the accept loops until the orchestrator stops.
    pub(crate) fn keep_listeners(&self, listeners: Vec<Task<()>>) {
        lock(&self.tasks).listeners = listeners;
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

    /// Waits up to `timeout` until an event with `seq >= since` exists.
    pub(crate) async fn wait_for_seq(&self, since: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let listener = self.log_changed.listen();
            if lock(&self.log).next_seq() > since {
                return;
            }
            if deadline_first(listener, deadline).await {
                return;
            }
        }
    }

    pub(crate) fn subscribe(&self) -> async_channel::Receiver<TimedEvent> {
        lock(&self.log).subscribe()
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
            if deadline_first(listener, deadline).await {
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
    ) -> Result<CommandAnswer, OrchestratorError> {
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
        let outcome = with_timeout(timeout, exchange).await.unwrap_or(Err(OrchestratorError::Timeout));
        lock(&self.registry).remove_waiter(id, key);
        outcome
    }

    pub(crate) async fn command(
        &self,
        worker_id: &str,
        kind: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<CommandAnswer, OrchestratorError> {
        let id = lock(&self.registry).next_command_id();
        self.command_with_id(worker_id, &id, kind, params, timeout).await
    }

    /// Sends command `kind` (with `id`, or a fresh one) without waiting for its result;
    /// returns the id once the frame is written.
    pub(crate) async fn send_command(
        &self,
        worker_id: &str,
        id: Option<&str>,
        kind: &str,
        params: Value,
    ) -> Result<String, OrchestratorError> {
        let id = match id {
            Some(id) => id.to_string(),
            None => lock(&self.registry).next_command_id(),
        };
        let text = serde_json::json!({ "type": kind, "id": id, "params": params }).to_string();
        self.send_with_timeout(worker_id, Message::text(text)).await?;
        Ok(id)
    }

    /// Closes every worker connection at once, as a network failure would; how many there were.
    pub(crate) fn drop_worker_connections(&self) -> usize {
        lock(&self.registry).drop_connections()
    }

    /// A binary frame from `connection`, for the console's terminals.
    pub(crate) fn relay_output(&self, connection: u64, bytes: &[u8]) {
        let worker_id = lock(&self.registry).worker_of(connection);
        if let Some(worker_id) = worker_id {
            lock(&self.relay).worker_output(&worker_id, bytes);
        }
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

    pub(crate) async fn send_with_timeout(&self, worker_id: &str, message: Message) -> Result<(), OrchestratorError> {
        with_timeout(SEND_TIMEOUT, self.send(worker_id, message)).await.unwrap_or(Err(OrchestratorError::Timeout))
    }

    /// Ends waiting commands and live feeds and cancels every task, listeners
    /// first, so no new connection task appears while the others are cancelled.
    pub(crate) async fn stop(&self) {
        {
            let mut registry = lock(&self.registry);
            registry.stopped = true;
            registry.drop_waiters();
        }
        let (listeners, connections) = {
            let mut tasks = lock(&self.tasks);
            tasks.closed = true;
            (std::mem::take(&mut tasks.listeners), std::mem::take(&mut tasks.connections))
        };
        for task in listeners {
            task.cancel().await;
        }
        for (_, task) in connections {
            task.cancel().await;
        }
        lock(&self.log).close_subscribers();
    }

    /// Cancels every task without waiting (used when the last handle is dropped).
    pub(crate) fn abort_tasks(&self) {
        let mut tasks = lock(&self.tasks);
        tasks.closed = true;
        tasks.listeners.clear();
        tasks.connections.clear();
    }
}

/// Locks a mutex, carrying on through poisoning: every critical section
/// leaves the state consistent, so a panicked holder cannot corrupt it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Waits for `listener` (a change of the event log) or `deadline`; `true` when the deadline came first.
async fn deadline_first(listener: event_listener::EventListener, deadline: Instant) -> bool {
    smol::future::or(
        async {
            listener.await;
            false
        },
        async {
            Timer::at(deadline).await;
            true
        },
    )
    .await
}

/// `future`'s output, or `None` when `timeout` passes first.
pub(crate) async fn with_timeout<T>(timeout: Duration, future: impl Future<Output = T>) -> Option<T> {
    cropscode_core::time::with_timeout(
        || async move {
            Timer::after(timeout).await;
        },
        future,
    )
    .await
}

/// The token of an `Authorization: Bearer <token>` value.
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
