//! What the running worker knows about itself, for the people and tools around it:
//! the systemd watchdog, a health listener (`/healthz`, `/readyz`, `/metrics`) and
//! `cropscode status` (through `DATA_DIR/worker.sock`).
//!
//! One [`Health`] per agent, shared (`Arc`) between the loop and whoever reads it:
//!
//! ```text
//!  cropscode_core::run ── clock reads ──► PulseClock ──► Pulse (last turn)
//!        │  every Event ─────────────────► Health::observe_event   (link state, commands,
//!        │                                                          latency, sessions)
//!        ├─ connect ──► ObservedConnector ► Health::connect_result (connected, last error)
//!        ├─ streams ──► ObservedEngine ───► bytes in/out, stream ends, containers running
//!        └─ heartbeat ► ObservedProbe ────► the heartbeat's figures
//!  engine check task (every 5 s) ─────────► Health::engine_result
//!
//!  readers: health::http (/healthz /readyz /metrics), health::status_socket (JSON
//!           snapshot), notify (watchdog fed only while the pulse is fresh)
//! ```
//!
//! Everything recorded is cheap: atomics and one short mutex per event; nothing is
//! computed until somebody asks.

pub mod http;
mod metrics;
mod observe;
mod pulse;
#[cfg(unix)]
pub mod status_socket;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cropscode_core::protocol::{Channel, Heartbeat};
use cropscode_core::session::AuditOutcome;
use cropscode_core::stream::StreamType;
use cropscode_core::{Clock, Event, Instant};
use serde_json::{Value, json};

use crate::SmolClock;

pub use observe::{ObservedConnector, ObservedEngine, ObservedProbe};
pub use pulse::{PULSE_MARGIN, Pulse, PulseClock, stale_after};

/// How often the engine check runs, and how long one may take.
pub const ENGINE_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// The engine counts as answering when its latest check succeeded, within this long.
pub const ENGINE_FRESH: Duration = Duration::from_secs(20);

/// Upper bounds (seconds) of the command latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 8] = [0.01, 0.05, 0.25, 1.0, 5.0, 30.0, 120.0, 600.0];

/// Asks the engine whether it answers: `Ok(what serves)` or `Err(why not)`.
pub type EngineCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync + 'static>;

/// Told every change of the link, with a line for a person.
type OnLink = Box<dyn FnMut(&Health, Link, &str) + Send>;

/// Where the link to the orchestrator is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Not connected; retrying.
    Disconnected,
    /// A connection attempt is under way.
    Connecting,
    /// Connected, `worker.register` sent.
    Connected,
    /// Registered: commands are accepted.
    Registered,
}

impl Link {
    /// Every state, in the order `/metrics` lists them.
    pub const ALL: [Link; 4] = [Link::Disconnected, Link::Connecting, Link::Connected, Link::Registered];

    /// Its name in `/metrics` and the status snapshot.
    pub const fn as_str(self) -> &'static str {
        match self {
            Link::Disconnected => "disconnected",
            Link::Connecting => "connecting",
            Link::Connected => "connected",
            Link::Registered => "registered",
        }
    }
}

/// The worker's live state; see the [module docs](self).
pub struct Health {
    clock: SmolClock,
    pulse: Arc<Pulse>,
    version: String,
    started_at: SystemTime,
    record: Mutex<Record>,
    bytes_out: AtomicU64,
    bytes_in: AtomicU64,
    /// Called on every change of the link (the systemd notifier's `STATUS=`).
    on_link: Mutex<Option<OnLink>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").field("pulse", &self.pulse).finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Record {
    link: Option<Link>,
    worker_id: Option<String>,
    connected_since: Option<SystemTime>,
    connects: u64,
    last_error: Option<(SystemTime, String)>,
    /// `(command, outcome)` → count.
    commands: BTreeMap<(&'static str, &'static str), u64>,
    /// Running commands: id → (started, name).
    running: HashMap<String, (Instant, &'static str)>,
    latency: Histogram,
    /// Open streams by channel; and the command id that opened each until it is answered.
    streams: HashMap<u32, StreamType>,
    opening: HashMap<String, u32>,
    heartbeat: Option<(SystemTime, Heartbeat)>,
    engine: EngineState,
}

#[derive(Default)]
struct Histogram {
    counts: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct EngineState {
    last_ok: Option<Instant>,
    /// Whether the latest check succeeded.
    ok: bool,
    serving: Option<String>,
    last_error: Option<(SystemTime, String)>,
    checked: bool,
}

impl Health {
    /// The state of an agent whose loop counts as stuck `stale_after` after its
    /// last turn; `clock` must be the one the loop's [`PulseClock`] wraps.
    pub fn new(clock: SmolClock, stale_after: Duration, version: impl Into<String>) -> Arc<Health> {
        let pulse = Arc::new(Pulse::new(stale_after));
        pulse.mark(clock.now());
        Arc::new(Health {
            clock,
            pulse,
            version: version.into(),
            started_at: SystemTime::now(),
            record: Mutex::new(Record::default()),
            bytes_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            on_link: Mutex::new(None),
        })
    }

    /// The clock the pulse is read on.
    pub fn clock(&self) -> SmolClock {
        self.clock
    }

    /// The loop's pulse.
    pub fn pulse(&self) -> &Arc<Pulse> {
        &self.pulse
    }

    /// The clock the loop runs on, marking the pulse.
    pub fn loop_clock(&self) -> PulseClock {
        PulseClock::new(self.clock, self.pulse.clone())
    }

    /// Whether the loop turned recently (`/healthz`).
    pub fn is_alive(&self) -> bool {
        self.pulse.is_fresh(self.clock.now())
    }

    /// `Ok` when registered and the engine answered recently (`/readyz`); else why not.
    /// An agent built without an engine check is judged by its registration alone.
    pub fn readiness(&self) -> Result<(), String> {
        self.record().readiness(self.clock.now())
    }

    /// Calls `f` on every change of the link, with a line for a person.
    pub fn on_link_change(&self, f: impl FnMut(&Health, Link, &str) + Send + 'static) {
        *self.on_link.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(f));
    }

    fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_link(&self, link: Link, line: &str) {
        let changed = {
            let mut record = self.record();
            let changed = record.link != Some(link);
            record.link = Some(link);
            changed
        };
        if changed && let Some(f) = self.on_link.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            f(self, link, line);
        }
    }

    /// Records what one session event says.
    pub fn observe_event(&self, event: &Event) {
        let now = self.clock.now();
        match event {
            Event::Connect => {
                self.record().connects += 1;
                self.set_link(Link::Connecting, "connecting to the orchestrator");
            }
            Event::Registered { worker_id, .. } => {
                {
                    let mut record = self.record();
                    record.worker_id = Some(worker_id.clone());
                    record.connected_since = Some(SystemTime::now());
                }
                self.set_link(Link::Registered, &format!("registered as {worker_id}"));
            }
            Event::Disconnect { reason } => {
                let mut record = self.record();
                record.last_error = Some((SystemTime::now(), reason.to_string()));
                record.connected_since = None;
            }
            Event::BackingOff { delay, auth, .. } => {
                {
                    let mut record = self.record();
                    record.connected_since = None;
                    if *auth {
                        record.last_error =
                            Some((SystemTime::now(), "the orchestrator refused the worker token".into()));
                    }
                }
                let line = format!("reconnecting in {:.1}s", delay.as_secs_f64());
                self.set_link(Link::Disconnected, &line);
            }
            Event::Execute { id, command } => {
                self.record().running.insert(id.clone(), (now, command.name()));
            }
            Event::OpenStream { id, stream, command } => {
                let mut record = self.record();
                record.running.insert(id.clone(), (now, command.name()));
                record.streams.insert(stream.channel.get(), stream.kind);
                record.opening.insert(id.clone(), stream.channel.get());
            }
            Event::Audit(audit) => {
                let mut record = self.record();
                let outcome = match &audit.outcome {
                    AuditOutcome::Ok => "ok",
                    AuditOutcome::Error(e) => e.code.as_str(),
                    AuditOutcome::Replayed => "replayed",
                    AuditOutcome::AlreadyRunning => "already_running",
                    _ => "other",
                };
                *record.commands.entry((audit.command.unwrap_or("invalid"), outcome)).or_default() += 1;
                if let Some(id) = &audit.id {
                    if let Some((started, _)) = record.running.remove(id) {
                        record.latency.observe(now.saturating_duration_since(started));
                    }
                    if let Some(channel) = record.opening.remove(id)
                        && !matches!(audit.outcome, AuditOutcome::Ok)
                    {
                        record.streams.remove(&channel);
                    }
                }
            }
            _ => {}
        }
    }

    /// Records the outcome of a connection attempt.
    pub fn connect_result(&self, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self.set_link(Link::Connected, "connected, registering"),
            Err(error) => self.record().last_error = Some((SystemTime::now(), error)),
        }
    }

    /// Records the outcome of an engine check.
    pub fn engine_result(&self, outcome: Result<String, String>) {
        let now = self.clock.now();
        let mut record = self.record();
        let engine = &mut record.engine;
        engine.checked = true;
        match outcome {
            Ok(serving) => {
                engine.ok = true;
                engine.last_ok = Some(now);
                engine.serving = Some(serving);
            }
            Err(error) => {
                engine.ok = false;
                engine.last_error = Some((SystemTime::now(), error));
            }
        }
    }

    pub(crate) fn heartbeat_taken(&self, figures: &Heartbeat) {
        self.record().heartbeat = Some((SystemTime::now(), figures.clone()));
    }

    pub(crate) fn containers_counted(&self, running: u32) {
        if let Some((_, figures)) = self.record().heartbeat.as_mut() {
            figures.containers_running = running;
        }
    }

    pub(crate) fn stream_bytes(&self, out: usize, into: usize) {
        self.bytes_out.fetch_add(out as u64, Ordering::Relaxed);
        self.bytes_in.fetch_add(into as u64, Ordering::Relaxed);
    }

    pub(crate) fn stream_ended(&self, channel: Channel) {
        self.record().streams.remove(&channel.get());
    }

    /// The JSON snapshot `cropscode status` shows (`DATA_DIR/worker.sock`).
    pub fn snapshot(&self) -> Value {
        let now = self.clock.now();
        let record = self.record();
        let (terminals, displays) = record.sessions();
        let unix = |t: &SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let error = |e: &Option<(SystemTime, String)>| {
            e.as_ref().map(|(at, message)| json!({ "at": unix(at), "message": message }))
        };
        let heartbeat = record.heartbeat.as_ref().map(|(at, h)| {
            json!({
                "at": unix(at),
                "cpuUsage": h.cpu_usage,
                "memoryFree": h.memory_free,
                "diskFree": h.disk_free,
                "diskTotal": h.disk_total,
                "containersRunning": h.containers_running,
            })
        });
        let engine = &record.engine;
        json!({
            "pid": std::process::id(),
            "version": self.version,
            "startedAt": unix(&self.started_at),
            "state": record.link.map_or("starting", Link::as_str),
            "connected": matches!(record.link, Some(Link::Connected | Link::Registered)),
            "workerId": record.worker_id,
            "connectedSince": record.connected_since.as_ref().map(unix),
            "lastHeartbeat": heartbeat,
            "commandsRunning": record.running.len(),
            "sessions": { "terminals": terminals, "displays": displays },
            "engine": {
                "checked": engine.checked,
                "answering": engine.answering(now),
                "serving": engine.serving,
                "lastError": error(&engine.last_error),
            },
            "lastError": error(&record.last_error),
            "loop": {
                "alive": self.pulse.is_fresh(now),
                "lastTurnAgoMs": self.pulse.age(now).map(|d| d.as_millis() as u64),
                "staleAfterMs": self.pulse.stale_after().as_millis() as u64,
            },
            "notReady": record.readiness(now).err(),
        })
    }
}

impl Record {
    fn readiness(&self, now: Instant) -> Result<(), String> {
        if self.link != Some(Link::Registered) {
            let link = self.link.map_or("starting", Link::as_str);
            return Err(format!("not registered with the orchestrator ({link})"));
        }
        if self.engine.checked && !self.engine.answering(now) {
            let why = self.engine.last_error.as_ref().map_or("no answer yet", |(_, e)| e.as_str());
            return Err(format!("the container engine does not answer: {why}"));
        }
        Ok(())
    }

    fn sessions(&self) -> (usize, usize) {
        let terminals = self.streams.values().filter(|k| **k == StreamType::Terminal).count();
        (terminals, self.streams.len() - terminals)
    }
}

impl EngineState {
    /// The latest check succeeded, and not too long ago.
    fn answering(&self, now: Instant) -> bool {
        self.ok && self.last_ok.is_some_and(|ok| now.saturating_duration_since(ok) <= ENGINE_FRESH)
    }
}

impl Histogram {
    fn observe(&mut self, took: Duration) {
        let seconds = took.as_secs_f64();
        for (count, bound) in self.counts.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}
