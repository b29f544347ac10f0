//! Who is connected, which worker id each connection registered as, and which
//! commands are waiting for their `result`.
//!
//! Plain data behind one mutex: connection tasks update it as frames arrive,
//! command senders look up a worker's outbound queue and park a waiter here,
//! and `result`/`progress` frames are routed to the waiters by command id
//! (ids are global, so a result that arrives on a later connection of the same
//! worker — held while it was disconnected — still finds its waiter).

use std::collections::HashMap;
use std::ops::Deref;
use std::time::Instant;

use async_tungstenite::tungstenite::Message;
use cropscode_core::protocol::{self, Heartbeat, Register};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How many `progress` payloads one waiting command keeps (the oldest are dropped beyond it).
pub const MAX_PROGRESS_PER_COMMAND: usize = 1024;

/// Longest worker id the orchestrator adopts from a `worker.register`.
const MAX_WORKER_ID_BYTES: usize = 128;

/// The answer to a command: the worker's `result` frame (core's
/// [`protocol::CommandResult`], the one type for it) plus the `progress` that
/// preceded it.
///
/// It dereferences to the frame, so `answer.id`, `answer.ok` and
/// `answer.outcome()` read the frame's fields. Serialized, it is the frame's
/// fields and `progress` side by side (what `POST /workers/{id}/commands` answers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandAnswer {
    /// The worker's `result` frame for the command id.
    #[serde(flatten)]
    pub frame: protocol::CommandResult,
    /// The `progress` payloads received for this id while the command was waiting, in order.
    #[serde(default)]
    pub progress: Vec<Value>,
}

impl CommandAnswer {
    /// The wire `result` frame (without progress).
    pub fn to_wire(&self) -> protocol::CommandResult {
        self.frame.clone()
    }
}

impl Deref for CommandAnswer {
    type Target = protocol::CommandResult;

    fn deref(&self) -> &protocol::CommandResult {
        &self.frame
    }
}

/// A connected, registered worker.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerInfo {
    /// The id the orchestrator gave it.
    pub worker_id: String,
    /// The connection it is registered on.
    pub connection: u64,
    /// Its latest `worker.register`.
    pub register: Register,
    /// Its latest heartbeat on this connection, if any.
    pub last_heartbeat: Option<Heartbeat>,
    /// When that heartbeat arrived.
    pub last_heartbeat_at: Option<Instant>,
    /// When the connection was upgraded.
    pub connected_at: Instant,
    /// When the worker registered on it.
    pub registered_at: Instant,
}

/// A frame for a connection task to write, with where to report that it was written.
pub(crate) struct Outbound {
    pub(crate) message: Message,
    pub(crate) written: async_channel::Sender<bool>,
}

struct Connection {
    outbound: async_channel::Sender<Outbound>,
    connected_at: Instant,
    worker: Option<RegisteredWorker>,
}

struct RegisteredWorker {
    worker_id: String,
    register: Register,
    registered_at: Instant,
    last_heartbeat: Option<(Heartbeat, Instant)>,
}

struct Waiter {
    key: u64,
    progress: Vec<Value>,
    reply: async_channel::Sender<CommandAnswer>,
}

#[derive(Default)]
pub(crate) struct Registry {
    connections: HashMap<u64, Connection>,
    /// worker id → the connection it most recently registered on.
    workers: HashMap<String, u64>,
    /// command id → everyone waiting for its result.
    waiters: HashMap<String, Vec<Waiter>>,
    next_connection: u64,
    next_worker: u64,
    next_command: u64,
    /// When this registry issued its first command id (ns since the epoch, hex in ids), so a
    /// restarted orchestrator never reuses an id a worker still remembers.
    command_epoch: u64,
    next_waiter: u64,
    pub(crate) stopped: bool,
}

impl Registry {
    pub(crate) fn next_connection(&mut self) -> u64 {
        self.next_connection += 1;
        self.next_connection
    }

    pub(crate) fn next_command_id(&mut self) -> String {
        if self.command_epoch == 0 {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            self.command_epoch = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX).max(1);
        }
        self.next_command += 1;
        format!("c-{:x}-{}", self.command_epoch, self.next_command)
    }

    pub(crate) fn add_connection(&mut self, connection: u64, outbound: async_channel::Sender<Outbound>) {
        self.connections.insert(connection, Connection { outbound, connected_at: Instant::now(), worker: None });
    }

    pub(crate) fn remove_connection(&mut self, connection: u64) {
        if let Some(Connection { worker: Some(worker), .. }) = self.connections.remove(&connection)
            && self.workers.get(&worker.worker_id) == Some(&connection)
        {
            self.workers.remove(&worker.worker_id);
        }
    }

    /// Registers the worker on `connection`; returns the worker id to acknowledge.
    ///
    /// The id the worker announces is kept (it comes from its `worker.json`);
    /// otherwise a fresh `w-<n>` is made. A worker registering again on a new
    /// connection takes its id over from the old one.
    pub(crate) fn register(&mut self, connection: u64, register: Register) -> String {
        let announced = register.worker_id.clone().filter(|id| !id.is_empty() && id.len() <= MAX_WORKER_ID_BYTES);
        let worker_id = match announced {
            Some(id) => id,
            None => loop {
                self.next_worker += 1;
                let id = format!("w-{}", self.next_worker);
                if !self.workers.contains_key(&id) {
                    break id;
                }
            },
        };
        if let Some(entry) = self.connections.get_mut(&connection) {
            if let Some(previous) = entry.worker.take()
                && previous.worker_id != worker_id
                && self.workers.get(&previous.worker_id) == Some(&connection)
            {
                self.workers.remove(&previous.worker_id);
            }
            entry.worker = Some(RegisteredWorker {
                worker_id: worker_id.clone(),
                register,
                registered_at: Instant::now(),
                last_heartbeat: None,
            });
            self.workers.insert(worker_id.clone(), connection);
        }
        worker_id
    }

    /// Keeps a heartbeat; returns the connection's worker id, if it registered.
    pub(crate) fn heartbeat(&mut self, connection: u64, heartbeat: &Heartbeat) -> Option<String> {
        let worker = self.connections.get_mut(&connection)?.worker.as_mut()?;
        worker.last_heartbeat = Some((heartbeat.clone(), Instant::now()));
        Some(worker.worker_id.clone())
    }

    pub(crate) fn workers(&self) -> Vec<WorkerInfo> {
        let mut list: Vec<WorkerInfo> = self
            .workers
            .iter()
            .filter_map(|(worker_id, connection)| {
                let entry = self.connections.get(connection)?;
                let worker = entry.worker.as_ref().filter(|w| &w.worker_id == worker_id)?;
                Some(WorkerInfo {
                    worker_id: worker_id.clone(),
                    connection: *connection,
                    register: worker.register.clone(),
                    last_heartbeat: worker.last_heartbeat.as_ref().map(|(h, _)| h.clone()),
                    last_heartbeat_at: worker.last_heartbeat.as_ref().map(|(_, at)| *at),
                    connected_at: entry.connected_at,
                    registered_at: worker.registered_at,
                })
            })
            .collect();
        list.sort_by_key(|w| w.connection);
        list
    }

    /// The worker id `connection` registered as, if it did.
    pub(crate) fn worker_of(&self, connection: u64) -> Option<String> {
        Some(self.connections.get(&connection)?.worker.as_ref()?.worker_id.clone())
    }

    /// Closes every connection's outbound queue: each connection task then ends at
    /// once, dropping its socket without a close frame (a network failure, as the
    /// worker sees it). Returns how many connections there were.
    pub(crate) fn drop_connections(&self) -> usize {
        for connection in self.connections.values() {
            connection.outbound.close();
        }
        self.connections.len()
    }

    /// The outbound queue of the connection `worker_id` is registered on.
    pub(crate) fn outbound(&self, worker_id: &str) -> Option<async_channel::Sender<Outbound>> {
        let connection = self.workers.get(worker_id)?;
        self.connections.get(connection).map(|c| c.outbound.clone())
    }

    /// Parks a waiter for command `id`; returns its key (to remove it) and where the result arrives.
    pub(crate) fn add_waiter(&mut self, id: &str) -> (u64, async_channel::Receiver<CommandAnswer>) {
        self.next_waiter += 1;
        let key = self.next_waiter;
        let (reply, rx) = async_channel::bounded(1);
        self.waiters.entry(id.to_string()).or_default().push(Waiter { key, progress: Vec::new(), reply });
        (key, rx)
    }

    pub(crate) fn remove_waiter(&mut self, id: &str, key: u64) {
        if let Some(list) = self.waiters.get_mut(id) {
            list.retain(|w| w.key != key);
            if list.is_empty() {
                self.waiters.remove(id);
            }
        }
    }

    /// Ends every wait (the orchestrator stopped): waiters see their channel closed.
    pub(crate) fn drop_waiters(&mut self) {
        self.waiters.clear();
    }

    pub(crate) fn route_result(&mut self, result: protocol::CommandResult) {
        let Some(waiters) = self.waiters.remove(&result.id) else {
            return;
        };
        for waiter in waiters {
            let answer = CommandAnswer { frame: result.clone(), progress: waiter.progress };
            let _ = waiter.reply.try_send(answer);
        }
    }

    pub(crate) fn route_progress(&mut self, progress: protocol::Progress) {
        let Some(waiters) = self.waiters.get_mut(&progress.id) else {
            return;
        };
        for waiter in waiters {
            if waiter.progress.len() >= MAX_PROGRESS_PER_COMMAND {
                waiter.progress.remove(0);
            }
            waiter.progress.push(progress.progress.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_new_registry_never_reissues_an_earlier_ones_command_ids() {
        let mut first = Registry::default();
        let a = first.next_command_id();
        std::thread::sleep(std::time::Duration::from_millis(1));
        let mut restarted = Registry::default();
        let b = restarted.next_command_id();
        assert!(a.starts_with("c-") && a.ends_with("-1"), "{a}");
        assert_ne!(a, b);
        assert_ne!(first.next_command_id(), a);
    }

    use super::*;
    use cropscode_core::protocol::{Limits, Mode};

    fn register(worker_id: Option<&str>) -> Register {
        Register {
            protocol_version: 1,
            name: "n".into(),
            hostname: "h".into(),
            platform: "linux".into(),
            arch: "x86_64".into(),
            cpu_count: 1,
            memory_total: 1,
            container_engines: vec![],
            agent_version: "0".into(),
            mode: Mode::Byom,
            worker_id: worker_id.map(Into::into),
            limits: Limits::DEFAULT,
        }
    }

    #[test]
    fn keeps_announced_ids_and_makes_fresh_ones() {
        let mut registry = Registry::default();
        let (tx, _rx) = async_channel::bounded(1);
        for c in 1..=3 {
            registry.add_connection(c, tx.clone());
        }
        assert_eq!(registry.register(1, register(Some("w-2"))), "w-2");
        assert_eq!(registry.register(2, register(None)), "w-1");
        assert_eq!(registry.register(3, register(None)), "w-3", "w-2 is taken");
        // The same worker on a new connection takes its id over.
        registry.add_connection(4, tx.clone());
        assert_eq!(registry.register(4, register(Some("w-2"))), "w-2");
        registry.remove_connection(1);
        let ids: Vec<_> = registry.workers().into_iter().map(|w| (w.worker_id, w.connection)).collect();
        assert_eq!(ids, vec![("w-1".into(), 2), ("w-3".into(), 3), ("w-2".into(), 4)]);
    }

    #[test]
    fn routes_progress_then_result_to_every_waiter() {
        let mut registry = Registry::default();
        let (_a, rx_a) = registry.add_waiter("c-1");
        let (b, rx_b) = registry.add_waiter("c-1");
        registry.route_progress(protocol::Progress { id: "c-1".into(), progress: Value::from(50) });
        registry.remove_waiter("c-1", b);
        registry.route_result(protocol::CommandResult::from_outcome("c-1".into(), Ok(Value::from("done"))));
        let got = rx_a.try_recv().unwrap();
        assert_eq!(
            (got.frame.ok, got.frame.result, got.progress),
            (true, Some(Value::from("done")), vec![Value::from(50)])
        );
        assert!(rx_b.try_recv().is_err());
        assert!(registry.waiters.is_empty());
    }
}
