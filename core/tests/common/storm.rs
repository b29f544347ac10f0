//! A reconnect storm, simulated: N real [`Session`]s (default configuration, each
//! its own backoff seed) are registered with one orchestrator, lose it at the same
//! instant t = 0, and find it again after an outage. Shared by
//! `core/examples/reconnect_storm.rs` (figures) and `core/tests/reconnect_storm.rs`
//! (properties), so the simulation cannot rot unnoticed.
//!
//! ```text
//!  heap of (instant, seq) ──pop──► worker i: handle_input(now, input)
//!        ▲                                   │ drain poll_output
//!        │  its next Output::Timeout         ▼
//!        └──── orchestrator model ◄── Event::Connect, register frame, ping
//!              (answers after rtt)
//! ```
//!
//! A discrete-event simulation: no threads and no clock. Every input a session
//! gets comes from a priority queue of deliveries (its own deadline from
//! [`Output::Timeout`], or the orchestrator's answer to something it sent), in
//! the order of (instant, insertion). The orchestrator is a model:
//!
//! - **before t = 0** it is up: a connect succeeds after `3 × rtt` (TCP, TLS 1.3,
//!   WebSocket upgrade), `worker.register` is answered after `rtt + service`,
//!   pings after `rtt`; heartbeats are not answered (as the real one);
//! - **at t = 0** every connection breaks ([`Input::Disconnected`], an I/O error);
//! - **during the outage** (`[0, outage)`) a connect fails after `rtt`
//!   ([`Input::ConnectFailed`], connection refused);
//! - **after it** a connect succeeds as before; with a `capacity` of K, at most K
//!   upgrades are accepted per 100 ms bucket and the rest are answered at once
//!   with an HTTP 503 ([`TransportError::Protocol`], retryable), which sends the
//!   worker to its next backoff step.
//!
//! A connection attempt is counted when the session emits [`Event::Connect`]
//! (its arrival at the orchestrator is half an rtt later, the same for all).
//! A worker leaves the simulation once it is registered again.
#![allow(dead_code)] // shared by an example and a test; each uses a part

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use cropscode_core::protocol::{Heartbeat, Limits, Mode, PROTOCOL_VERSION, Register};
use cropscode_core::session::{Event, Input, Output, Session, SessionConfig};
use cropscode_core::{Frame, Instant, TransportError};

/// Width of an arrival-rate bucket.
pub const BUCKET: Duration = Duration::from_millis(100);
const BUCKET_MS: u64 = 100;

/// One storm.
#[derive(Debug, Clone, PartialEq)]
pub struct StormConfig {
    /// Workers in the fleet.
    pub workers: usize,
    /// `SessionConfig::backoff.jitter` of every worker (1.0 is the default, full jitter).
    pub jitter: f32,
    /// `SessionConfig::backoff.initial` of every worker (1 s is the default); to
    /// try a schedule, not the fleet's.
    pub backoff_initial: Duration,
    /// How long the orchestrator is down after t = 0.
    pub outage: Duration,
    /// Round trip between a worker and the orchestrator.
    pub rtt: Duration,
    /// The orchestrator's time to answer one `worker.register`.
    pub service: Duration,
    /// Upgrades accepted per 100 ms after the return (`None`: unlimited).
    pub capacity: Option<u32>,
    /// Seed of the fleet: worker i's backoff seed is derived from it and i.
    pub seed: u64,
    /// How long every worker has been registered at t = 0 (beyond `stable_after`,
    /// so the backoff starts over as it would in a fleet that ran for a while).
    pub registered_for: Duration,
    /// The simulation gives up this long after the return.
    pub give_up_after: Duration,
}

impl Default for StormConfig {
    fn default() -> Self {
        StormConfig {
            workers: 1000,
            jitter: 1.0,
            backoff_initial: Duration::from_secs(1),
            outage: Duration::from_secs(60),
            rtt: Duration::from_millis(10),
            service: Duration::from_millis(2),
            capacity: None,
            seed: 1,
            registered_for: Duration::from_secs(90),
            give_up_after: Duration::from_secs(3600),
        }
    }
}

/// What a storm did, with times in milliseconds after t = 0.
#[derive(Debug, Clone, PartialEq)]
pub struct StormReport {
    /// The storm's configuration.
    pub config: StormConfig,
    /// Every connection attempt after t = 0, in order (ms after t = 0).
    pub attempt_times: Vec<u64>,
    /// Attempts answered 503 by the capacity limit.
    pub refused_for_capacity: u64,
    /// When each worker registered again, sorted (ms after t = 0); workers still
    /// unregistered at `give_up_after` are missing.
    pub registered_times: Vec<u64>,
    /// Inputs fed to sessions, all phases (for the event loop's speed).
    pub inputs: u64,
}

/// Peak and mean of the arrival rate over a window of 100 ms buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateWindow {
    /// Buckets in the window (at least one).
    pub buckets: u64,
    /// Attempts in the window.
    pub attempts: u64,
    /// The fullest bucket.
    pub peak: u64,
}

impl RateWindow {
    /// Mean attempts per bucket.
    pub fn mean(&self) -> f64 {
        self.attempts as f64 / self.buckets as f64
    }

    /// Peak over mean (0 for an empty window).
    pub fn peak_over_mean(&self) -> f64 {
        if self.attempts == 0 { 0.0 } else { self.peak as f64 / self.mean() }
    }
}

impl StormReport {
    /// Attempts per 100 ms bucket from t = 0 to the last attempt.
    pub fn buckets(&self) -> Vec<u64> {
        let len = self.attempt_times.last().map_or(0, |t| t / BUCKET_MS + 1) as usize;
        let mut buckets = vec![0; len];
        for t in &self.attempt_times {
            buckets[(t / BUCKET_MS) as usize] += 1;
        }
        buckets
    }

    /// The orchestrator's return, ms after t = 0.
    pub fn return_ms(&self) -> u64 {
        self.config.outage.as_millis() as u64
    }

    /// Time from the return until a fraction `q` of the fleet is registered
    /// (`None` if that many never were).
    pub fn registered_after_return(&self, q: f64) -> Option<Duration> {
        let n = (q * self.config.workers as f64).ceil() as usize;
        let at = *self.registered_times.get(n.max(1) - 1)?;
        Some(Duration::from_millis(at.saturating_sub(self.return_ms())))
    }

    /// The rate over `[from, to)` ms after t = 0, in whole buckets.
    pub fn window(&self, from_ms: u64, to_ms: u64) -> RateWindow {
        let (first, end) = (from_ms / BUCKET_MS, to_ms.div_ceil(BUCKET_MS).max(from_ms / BUCKET_MS + 1));
        let buckets = self.buckets();
        let slice = buckets.get(first as usize..(end as usize).min(buckets.len())).unwrap_or(&[]);
        RateWindow {
            buckets: end - first,
            attempts: slice.iter().sum(),
            peak: slice.iter().copied().max().unwrap_or(0),
        }
    }

    /// The rate while the orchestrator is down.
    pub fn outage_window(&self) -> RateWindow {
        self.window(0, self.return_ms())
    }

    /// The rate from the return until 99 % are registered (the load the returned
    /// orchestrator sees); `None` if 99 % never were.
    pub fn recovery_window(&self) -> Option<RateWindow> {
        let t99 = self.registered_after_return(0.99)?;
        Some(self.window(self.return_ms(), self.return_ms() + t99.as_millis() as u64))
    }
}

/// A registration with plausible values.
pub fn register(i: usize) -> Register {
    Register {
        protocol_version: PROTOCOL_VERSION,
        name: format!("worker-{i}"),
        hostname: format!("host-{i}"),
        platform: "linux".into(),
        arch: "aarch64".into(),
        cpu_count: 4,
        memory_total: 4 << 30,
        container_engines: vec!["podman".into()],
        agent_version: "0.1.0".into(),
        mode: Mode::Fleet,
        worker_id: Some(format!("w-{i}")),
        limits: Limits::DEFAULT,
    }
}

/// Worker i's backoff seed: distinct per worker, like the runtime's
/// start-time-and-pid seed (SplitMix64 of the fleet seed and i).
pub fn worker_seed(fleet_seed: u64, i: usize) -> u64 {
    let mut z =
        fleet_seed.wrapping_mul(0x2545_F491_4F6C_DD1D).wrapping_add(i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What the orchestrator (or the clock) delivers to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Delivery {
    /// The session's own deadline.
    Timeout,
    /// The orchestrator goes away: the connection breaks.
    Lost,
    Connected,
    Refused,
    Busy,
    Registered,
    Pong,
}

struct Worker {
    session: Session,
    /// Bumped whenever a connection (or attempt) ends, so answers meant for an
    /// older one are dropped.
    generation: u32,
    /// The deadline of the last drain (a heap entry for another instant is stale).
    deadline: Instant,
    done: bool,
}

/// A heap entry: (instant ms, insertion order, worker, delivery, generation).
type Entry = Reverse<(u64, u64, u32, Delivery, u32)>;

struct Storm {
    config: StormConfig,
    /// t = 0 on the sessions' clock.
    t0: u64,
    heap: BinaryHeap<Entry>,
    seq: u64,
    admitted: Vec<u32>,
    report: StormReport,
    heartbeat: Heartbeat,
    refused: TransportError,
    busy: TransportError,
    lost: TransportError,
}

impl Storm {
    fn schedule(&mut self, at: Instant, worker: usize, delivery: Delivery, generation: u32) {
        self.seq += 1;
        self.heap.push(Reverse((at.as_millis(), self.seq, worker as u32, delivery, generation)));
    }

    fn up(&self, now: u64) -> bool {
        now < self.t0 || now >= self.t0 + self.config.outage.as_millis() as u64
    }

    /// Drains worker `i` at `now`, acting as the orchestrator on what it sends.
    fn drain(&mut self, i: usize, w: &mut Worker, now: Instant) {
        let rtt = self.config.rtt;
        loop {
            match w.session.poll_output() {
                Output::Transmit(Frame::Ping(_)) => self.schedule(now + rtt, i, Delivery::Pong, w.generation),
                Output::Transmit(Frame::Text(text)) if text.contains(r#""type":"worker.register""#) => {
                    self.schedule(now + rtt + self.config.service, i, Delivery::Registered, w.generation)
                }
                Output::Transmit(_) => {} // heartbeats: the orchestrator keeps them, answers nothing
                Output::Event(Event::Connect) => {
                    w.generation += 1;
                    let t = now.as_millis();
                    let delivery = if t < self.t0 {
                        Delivery::Connected
                    } else {
                        self.report.attempt_times.push(t - self.t0);
                        if !self.up(t) {
                            Delivery::Refused
                        } else if let Some(k) = self.config.capacity {
                            let bucket = ((t - self.t0) / BUCKET_MS) as usize;
                            if self.admitted.len() <= bucket {
                                self.admitted.resize(bucket + 1, 0);
                            }
                            if self.admitted[bucket] < k {
                                self.admitted[bucket] += 1;
                                Delivery::Connected
                            } else {
                                self.report.refused_for_capacity += 1;
                                Delivery::Busy
                            }
                        } else {
                            Delivery::Connected
                        }
                    };
                    let after = if delivery == Delivery::Connected { rtt * 3 } else { rtt };
                    self.schedule(now + after, i, delivery, w.generation);
                }
                Output::Event(Event::HeartbeatDue) => {
                    self.report.inputs += 1;
                    w.session.handle_input(now, Input::Heartbeat(self.heartbeat.clone()));
                }
                Output::Event(Event::Disconnect { .. }) => w.generation += 1,
                Output::Event(Event::Registered { .. }) if now.as_millis() >= self.t0 => {
                    self.report.registered_times.push(now.as_millis() - self.t0);
                    w.done = true;
                }
                Output::Event(_) => {}
                Output::Timeout(deadline) => {
                    if deadline != Instant::NEVER && deadline != w.deadline && !w.done {
                        self.schedule(deadline, i, Delivery::Timeout, 0);
                    }
                    w.deadline = deadline;
                    return;
                }
            }
        }
    }

    fn deliver(&mut self, i: usize, w: &mut Worker, now: Instant, delivery: Delivery) {
        self.report.inputs += 1;
        let frame = |text: &str| Input::Frame(Frame::Text(text.into()));
        match delivery {
            Delivery::Timeout => w.session.handle_input(now, Input::Timeout),
            Delivery::Lost => {
                w.generation += 1;
                w.session.handle_input(now, Input::Disconnected(&self.lost));
            }
            Delivery::Connected => w.session.handle_input(now, Input::Connected),
            Delivery::Refused => w.session.handle_input(now, Input::ConnectFailed(&self.refused)),
            Delivery::Busy => w.session.handle_input(now, Input::ConnectFailed(&self.busy)),
            Delivery::Registered => {
                let text = format!(r#"{{"type":"worker.registered","workerId":"w-{i}"}}"#);
                w.session.handle_input(now, frame(&text));
            }
            Delivery::Pong => w.session.handle_input(now, Input::Frame(Frame::Pong(Vec::new()))),
        }
        self.drain(i, w, now);
    }
}

/// Runs one storm to the end (every worker registered again, or `give_up_after`).
pub fn run(config: &StormConfig) -> StormReport {
    let t0 = config.registered_for.as_millis() as u64;
    let mut storm = Storm {
        t0,
        heap: BinaryHeap::with_capacity(config.workers * 2),
        seq: 0,
        admitted: Vec::new(),
        report: StormReport {
            config: config.clone(),
            attempt_times: Vec::with_capacity(config.workers * 8),
            refused_for_capacity: 0,
            registered_times: Vec::with_capacity(config.workers),
            inputs: 0,
        },
        heartbeat: Heartbeat {
            cpu_usage: 3.2,
            memory_free: 2_147_483_648,
            disk_total: Some(31_914_983_424),
            disk_free: Some(17_179_869_184),
            containers_running: 2,
            ..Heartbeat::default()
        },
        refused: TransportError::Io("connection refused".into()),
        busy: TransportError::Protocol("HTTP 503 Service Unavailable".into()),
        lost: TransportError::Io("connection reset by peer".into()),
        config: config.clone(),
    };
    let mut workers: Vec<Worker> = (0..config.workers)
        .map(|i| {
            let mut session_config = SessionConfig::default();
            session_config.backoff.jitter = config.jitter;
            session_config.backoff.initial = config.backoff_initial;
            session_config.backoff.seed = worker_seed(config.seed, i);
            let session = Session::new(session_config, register(i), Instant::ZERO);
            Worker { session, generation: 0, deadline: Instant::NEVER, done: false }
        })
        .collect();
    for (i, w) in workers.iter_mut().enumerate() {
        storm.drain(i, w, Instant::ZERO);
        storm.schedule(Instant::from_millis(t0), i, Delivery::Lost, 0);
    }
    let end = t0 + (config.outage + config.give_up_after).as_millis() as u64;
    let mut left = config.workers;
    while let Some(Reverse((at, _, i, delivery, generation))) = storm.heap.pop() {
        if at > end || left == 0 {
            break;
        }
        let w = &mut workers[i as usize];
        let now = Instant::from_millis(at);
        let current = match delivery {
            Delivery::Timeout => w.deadline == now,
            Delivery::Lost => true,
            _ => generation == w.generation,
        };
        if w.done || !current {
            continue;
        }
        storm.deliver(i as usize, w, now, delivery);
        if w.done {
            left -= 1;
        }
    }
    storm.report.registered_times.sort_unstable();
    storm.report
}
