//! The [`Orchestrator`] handle: it binds the listeners, spawns their accept
//! loops and is what callers hold.
//!
//! `start` binds the listeners and spawns their accept loops on smol's global
//! executor; each accepted socket gets a task of its own (`connection.rs`,
//! `http.rs`). Every task holds an `Arc<Shared>` (`shared.rs`), which owns the
//! tasks too, so `stop` (or dropping the last `Orchestrator` clone) can cancel
//! every one of them, which closes every socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_net::TcpListener;
use async_tungstenite::tungstenite::Message;
use serde_json::Value;

use crate::config::{Behavior, OrchestratorConfig, random_secret, require_loopback};
use crate::error::OrchestratorError;
use crate::event::{Event, TimedEvent};
use crate::registry::{CommandAnswer, WorkerInfo};
use crate::shared::Shared;
use crate::{connection, console, http, tls};

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

        let secret = match config.http_secret {
            Some(secret) => secret,
            None => random_secret()?,
        };
        let mut shared = Shared::new(config.tokens, secret, config.test_hooks);
        shared.gateway_url = config.gateway_url;
        let shared = Arc::new(shared);
        let tls = acceptor.is_some();
        let mut listeners = vec![
            smol::spawn(connection::accept_loop(shared.clone(), ws_listener, acceptor)),
            smol::spawn(console::drive_relay(shared.clone())),
        ];
        if let Some(listener) = http_listener {
            listeners.push(smol::spawn(http::accept_loop(shared.clone(), listener)));
        }
        shared.keep_listeners(listeners);

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

    /// The HTTP endpoint's per-run secret ([`OrchestratorConfig::http_secret`], or the one made
    /// at start): the bearer token of the JSON API and the key of the console. Show it only
    /// to the person running the orchestrator; never log it.
    pub fn http_secret(&self) -> &str {
        self.handle.shared.http_secret()
    }

    /// `http://127.0.0.1:PORT/#key=SECRET`: the console page with its key in the fragment
    /// (which a browser never sends), when an HTTP endpoint was configured. It holds the secret.
    pub fn console_url(&self) -> Option<String> {
        self.http_url().map(|url| format!("{url}/#key={}", self.http_secret()))
    }

    /// Closes every worker's connection at once without a close frame, as a network failure
    /// would (the listener stays up; workers reconnect). Returns how many there were.
    pub fn drop_worker_connections(&self) -> usize {
        self.handle.shared.drop_worker_connections()
    }

    /// The bound HTTP address, when one was configured.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.handle.http_addr
    }

    /// Changes how connections are treated from now on (see [`Behavior`]).
    pub fn set_behavior(&self, behavior: Behavior) {
        self.handle.shared.set_behavior(behavior);
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
        self.handle.shared.subscribe()
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
    /// `progress` frames for the id are collected into [`CommandAnswer::progress`]
    /// (and, like every frame, recorded as events). If the worker's connection
    /// drops meanwhile the wait goes on: a reconnected worker sends results it
    /// held. Fails at once with `UnknownWorker` if no such worker is connected.
    pub async fn command(
        &self,
        worker_id: &str,
        kind: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<CommandAnswer, OrchestratorError> {
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
    ) -> Result<CommandAnswer, OrchestratorError> {
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
        self.handle.shared.stop().await;
        tracing::info!(ws_addr = %self.handle.ws_addr, "local orchestrator stopped");
    }
}
