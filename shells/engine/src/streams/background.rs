//! Background execs: `container.exec.background`, `.kill` and `.capture`.
//!
//! A background exec's output lands in a [spool](super::spool) under
//! `DATA_DIR/execs/<execId>/`, next to `exec.json` (container, engine exec
//! id, tenant, how it ended). Both are plain files, so `capture` answers from
//! any offset while the command runs, after it ended, after the orchestrator
//! reconnected and after the worker restarted. The exec carries
//! `CROPSCODE_EXEC=<execId>` in its environment, so `kill` reaches it and its
//! children ([`signals`](super::signals)).
//!
//! Where the container has `sh` and a writable `/tmp`, the command's output
//! goes through a [relay](super::relay) in the container, which keeps it
//! (bounded) until the worker reads it: a *follow* task of the worker copies
//! it into the spool, and after a worker restart a new one goes on from the
//! offsets the spool holds, so nothing the command writes meanwhile is lost
//! (`restartSafe`). Elsewhere the command runs attached and its output is
//! copied only while this worker runs.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cropscode_core::protocol::ErrorCode;
use cropscode_core::protocol::commands::{
    ContainerExecBackground, ContainerExecBackgroundCapture, ContainerExecBackgroundCaptureResult,
    ContainerExecBackgroundKill, ContainerExecBackgroundKillResult, ContainerExecBackgroundResult, LABEL_TENANT,
    OutputChunk, OutputStream as Stream,
};
use cropscode_engine_api::{EngineClient, ExecLimits, ExecSpec, OutputKind, OutputStream, with_timeout};
use serde::{Deserialize, Serialize};

use super::relay::{self, Frame};
use super::signals::{EXEC_MARKER, Marked, READER_MARKER, signal_marked, signal_name, signal_number, signal_of_exit};
use super::spool::{self, SpoolWriter};
use crate::outcome::{Failure, Outcome};
use crate::owned::OwnedContainers;

/// Output kept per background exec (8 MiB): the newest bytes win.
pub(crate) const DEFAULT_SPOOL_BYTES: u64 = 8 * 1024 * 1024;
/// How long `kill` waits for the command to end when no `graceMs` is given.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How long an ended command's output may take to reach the spool.
const DRAIN_WAIT: Duration = Duration::from_secs(5);
const SIGKILL: u8 = 9;
const RECORD: &str = "exec.json";
/// Ended execs whose spools are kept; older ones are removed when a new exec starts.
const KEEP_ENDED: usize = 256;
/// What is kept of a relay reader's stderr, for the log.
const COMPLAINT_BYTES: usize = 1024;
/// Reader execs a follow task starts before it gives up while the container runs.
const READER_ATTEMPTS: u32 = 5;
/// Bounds the short helper execs (prepare the relay, remove it).
const HELPER_LIMITS: ExecLimits = ExecLimits { output_limit: 4096, timeout: Duration::from_secs(15) };

/// What the worker remembers of one background exec (`exec.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecRecord {
    exec_id: String,
    engine_exec_id: String,
    container_id: String,
    tenant: Option<String>,
    command: Vec<String>,
    /// The user it runs as (`None`: the container's).
    #[serde(default)]
    user: Option<String>,
    started_at: u64,
    /// The command runs (as far as the worker knows).
    running: bool,
    /// The engine's exit code, once ended.
    exit_code: Option<i64>,
    /// The signal `kill` ended it with, when one did.
    signal: Option<String>,
    /// The relay's directory in the container, when the output goes through one.
    #[serde(default)]
    relay: Option<String>,
    /// The relay's output is all in the spool (its directory is removed).
    #[serde(default)]
    drained: bool,
}

/// The background execs of this worker.
#[derive(Clone)]
pub(crate) struct BackgroundExecs {
    /// `DATA_DIR/execs`; without a data dir background execs are refused.
    dir: Option<PathBuf>,
    spool_bytes: u64,
    serial: Arc<AtomicU64>,
    /// Execs whose output a task of this worker is copying.
    pumping: Arc<Mutex<HashSet<String>>>,
    /// Serializes read-modify-write of the records.
    records: Arc<Mutex<()>>,
    tasks: Arc<Mutex<Vec<smol::Task<()>>>>,
}

fn internal(what: &str, error: impl std::fmt::Display) -> Failure {
    Failure::wire(ErrorCode::Internal, format!("{what}: {error}"))
}

fn not_found(exec_id: &str) -> Failure {
    Failure::wire(ErrorCode::NotFound, format!("no background exec `{exec_id}` on this worker"))
}

fn now_unix() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

impl BackgroundExecs {
    /// Background execs spooled under `data_dir/execs`.
    pub(crate) fn new(data_dir: Option<&Path>, spool_bytes: u64) -> Self {
        BackgroundExecs {
            dir: data_dir.map(|d| d.join("execs")),
            spool_bytes,
            serial: Arc::new(AtomicU64::new(0)),
            pumping: Arc::default(),
            records: Arc::default(),
            tasks: Arc::default(),
        }
    }

    fn dir(&self) -> Outcome<&Path> {
        self.dir.as_deref().ok_or_else(|| {
            Failure::wire(ErrorCode::EngineUnavailable, "background execs need a data directory (DATA_DIR)")
        })
    }

    fn record_path(&self, exec_id: &str) -> Outcome<PathBuf> {
        // Ids are validated identifiers; still, never let one leave the directory.
        if exec_id.is_empty() || exec_id.contains(['/', '\\']) || exec_id.starts_with('.') {
            return Err(not_found(exec_id));
        }
        Ok(self.dir()?.join(exec_id))
    }

    fn load(&self, exec_id: &str, tenant: Option<&str>) -> Outcome<ExecRecord> {
        let path = self.record_path(exec_id)?.join(RECORD);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found(exec_id)),
            Err(e) => return Err(internal("reading the exec record", e)),
        };
        let record: ExecRecord = serde_json::from_slice(&text).map_err(|e| internal("reading the exec record", e))?;
        if tenant.is_some() && record.tenant.as_deref() != tenant {
            return Err(not_found(exec_id));
        }
        Ok(record)
    }

    fn store(&self, record: &ExecRecord) -> Outcome<()> {
        let dir = self.record_path(&record.exec_id)?;
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| internal("writing the exec record", e))?;
        let temp = dir.join(format!("{RECORD}.tmp"));
        std::fs::write(&temp, bytes)
            .and_then(|()| std::fs::rename(&temp, dir.join(RECORD)))
            .map_err(|e| internal("writing the exec record", e))
    }

    /// Loads, changes and stores a record under the records lock.
    fn update(&self, exec_id: &str, change: impl FnOnce(&mut ExecRecord)) -> Outcome<ExecRecord> {
        let _guard = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let mut record = self.load(exec_id, None)?;
        change(&mut record);
        self.store(&record)?;
        Ok(record)
    }

    /// Removes the spools of the oldest ended execs beyond [`KEEP_ENDED`].
    fn prune(&self, keep: &str) {
        let mut ended: Vec<(u64, String)> = self
            .records()
            .filter(|record| !record.running && record.exec_id != keep)
            .map(|record| (record.started_at, record.exec_id))
            .collect();
        if ended.len() <= KEEP_ENDED {
            return;
        }
        ended.sort();
        for (_, exec_id) in &ended[..ended.len() - KEEP_ENDED] {
            if let Ok(path) = self.record_path(exec_id) {
                tracing::debug!(exec = %exec_id, "removing the spool of an old background exec");
                let _ = std::fs::remove_dir_all(path);
            }
        }
    }

    /// Every readable record under the data directory.
    fn records(&self) -> impl Iterator<Item = ExecRecord> + '_ {
        let entries = self.dir().ok().and_then(|dir| std::fs::read_dir(dir).ok());
        entries
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter_map(|exec_id| self.load(&exec_id, None).ok())
    }

    fn is_pumping(&self, exec_id: &str) -> bool {
        self.pumping.lock().map(|p| p.contains(exec_id)).unwrap_or(false)
    }

    /// `container.exec.background`.
    pub(crate) async fn start(
        &self,
        engine: &impl OwnedContainers,
        request: ContainerExecBackground,
    ) -> Outcome<ContainerExecBackgroundResult> {
        let dir = self.dir()?.to_path_buf();
        let (client, owned) = engine.running_container(&request.container_id, request.tenant.as_deref()).await?;
        engine.check_user(request.user.as_deref(), &owned.inspect.config.user)?;
        let now = now_unix();
        let exec_id = format!("x-{:x}-{}", now.as_millis(), self.serial.fetch_add(1, Ordering::Relaxed));
        let relay_dir = relay::dir(&exec_id);
        let relay = prepare_relay(&client, &owned.id, &relay_dir, request.user.as_deref()).await.then_some(relay_dir);
        let mut env = request.env.to_pairs();
        if relay.is_none() {
            // (Through the relay, only the command gets it, not the wrapper.)
            env.push(format!("{EXEC_MARKER}={exec_id}"));
        }
        let spec = ExecSpec {
            cmd: match &relay {
                Some(dir) => relay::wrapped(EXEC_MARKER, &exec_id, dir, &request.command),
                None => request.command.clone(),
            },
            env,
            working_dir: request.working_dir.clone(),
            user: request.user.clone(),
            privileged: request.privileged,
            ..ExecSpec::default()
        };
        let engine_exec_id = match client.create_exec(&owned.id, &spec).await {
            Ok(id) => id,
            Err(error) => {
                if let Some(dir) = &relay {
                    remove_relay(&client, &owned.id, dir, request.user.as_deref()).await;
                }
                return Err(error.into());
            }
        };
        let spool = SpoolWriter::create(&dir.join(&exec_id), self.spool_bytes)
            .map_err(|e| internal("creating the spool", e))?;
        let tenant = request.tenant.clone().or_else(|| owned.inspect.config.labels.get(LABEL_TENANT).cloned());
        let record = ExecRecord {
            exec_id: exec_id.clone(),
            engine_exec_id: engine_exec_id.clone(),
            container_id: owned.id.clone(),
            tenant,
            command: request.command,
            user: request.user.clone(),
            started_at: now.as_secs(),
            running: true,
            exit_code: None,
            signal: None,
            relay: relay.clone(),
            drained: false,
        };
        self.store(&record)?;
        self.prune(&exec_id);
        if relay.is_some() {
            // Started attached and let go: Podman (4.x) never records the end of an exec
            // started detached; one whose caller went away it records. The output
            // goes to the relay, so the connection carries nothing.
            if let Err(error) = client.start_exec(&engine_exec_id, false).await {
                // Nothing runs: nothing to follow.
                remove_relay(&client, &owned.id, relay.as_deref().unwrap_or_default(), request.user.as_deref()).await;
                let _ = self.update(&exec_id, |r| {
                    r.running = false;
                    r.drained = true;
                });
                return Err(error.into());
            }
            drop(spool);
            self.spawn_follow(client, record);
        } else {
            let output = client.start_exec(&engine_exec_id, false).await?;
            self.pumping.lock().unwrap_or_else(|e| e.into_inner()).insert(exec_id.clone());
            self.spawn(self.clone().pump(client, record, output, spool));
        }
        tracing::info!(exec = %exec_id, container = %owned.id, engine_exec = %engine_exec_id, restart_safe = relay.is_some(), "background exec started");
        Ok(ContainerExecBackgroundResult { exec_id, container_id: owned.id, restart_safe: relay.is_some() })
    }

    fn spawn(&self, future: impl std::future::Future<Output = ()> + Send + 'static) {
        let task = smol::spawn(future);
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Starts copying a relayed exec's output, unless a task already does.
    fn spawn_follow(&self, client: EngineClient, record: ExecRecord) {
        if !self.pumping.lock().unwrap_or_else(|e| e.into_inner()).insert(record.exec_id.clone()) {
            return;
        }
        self.spawn(self.clone().follow(client, record));
    }

    /// Goes on copying the output of every relayed exec that was running when
    /// an earlier worker stopped (called once an engine answers).
    pub(crate) fn resume(&self, client: &EngineClient) {
        for record in self.records().filter(|r| r.running && r.relay.is_some() && !r.drained) {
            tracing::info!(exec = %record.exec_id, "following a background exec of an earlier worker");
            self.spawn_follow(client.clone(), record);
        }
    }

    /// A container started: background execs whose relay output is still in it
    /// (it stopped before everything was copied) are followed to their end.
    pub(crate) fn container_started(&self, client: &EngineClient, container_id: &str) {
        for record in self.records().filter(|r| r.container_id == container_id && r.relay.is_some() && !r.drained) {
            self.spawn_follow(client.clone(), record);
        }
    }

    /// Copies a relayed exec's output into its spool from where the spool
    /// ends, until the relay says both streams ended; then records how the
    /// command ended and removes the relay.
    async fn follow(self, client: EngineClient, record: ExecRecord) {
        let exec_id = record.exec_id.clone();
        let relay_dir = record.relay.clone().unwrap_or_default();
        let opened = self
            .record_path(&exec_id)
            .and_then(|dir| SpoolWriter::open(&dir, self.spool_bytes).map_err(|e| internal("opening the spool", e)));
        let drained = match opened {
            Ok(mut spool) => {
                let mut drained = false;
                for attempt in 0..READER_ATTEMPTS {
                    if attempt > 0 {
                        smol::Timer::after(Duration::from_secs(1)).await;
                    }
                    let read = async { Some(read_relay(&client, &record, &relay_dir, &mut spool).await) };
                    let watchdog = async {
                        abandoned(&client, &record).await;
                        None
                    };
                    match futures_lite::future::or(read, watchdog).await {
                        Some(Ok(true)) => {
                            drained = true;
                            break;
                        }
                        Some(Ok(false)) => tracing::debug!(exec = %exec_id, "the relay reader stopped early"),
                        Some(Err(error)) => tracing::warn!(exec = %exec_id, %error, "reading the relay failed"),
                        None => {
                            tracing::warn!(exec = %exec_id, "the command ended but its relay did not; giving up on the rest");
                            drained = true;
                            break;
                        }
                    }
                    // A reader runs only while the container does; one that restarts gets
                    // a while to come back (its relay's files are still there).
                    if !container_back(&client, &record.container_id).await {
                        break;
                    }
                }
                tracing::info!(exec = %exec_id, bytes = spool.end(), drained, "background output copied");
                drained
            }
            Err(error) => {
                tracing::warn!(exec = %exec_id, error = %error.into_wire(), "cannot follow a background exec");
                false
            }
        };
        // How the command ended: the engine records it a moment after its output closed.
        if drained {
            let code = client.exec_exit_code(&record.engine_exec_id);
            let _ = with_timeout("exec exit code", DRAIN_WAIT, code).await;
        }
        let (running, exit_code) = match client.inspect_exec(&record.engine_exec_id).await {
            Ok(inspect) => (inspect.running, inspect.exit_code),
            Err(e) if e.is_not_found() => (false, None),
            // Unknown: a later `capture` or `kill` asks again.
            Err(_) => (true, None),
        };
        if drained {
            remove_relay(&client, &record.container_id, &relay_dir, record.user.as_deref()).await;
        }
        if let Err(error) = self.update(&exec_id, |r| {
            r.drained |= drained;
            if !running {
                r.running = false;
                r.exit_code = r.exit_code.or(exit_code);
            }
        }) {
            tracing::warn!(exec = %exec_id, error = %error.into_wire(), "cannot record how a background exec ended");
        }
        self.pumping.lock().unwrap_or_else(|e| e.into_inner()).remove(&exec_id);
        tracing::info!(exec = %exec_id, running, ?exit_code, "background exec followed to its end");
    }

    /// Copies the command's output into its spool, then records how it ended.
    async fn pump(self, client: EngineClient, record: ExecRecord, mut output: OutputStream, mut spool: SpoolWriter) {
        let exec_id = record.exec_id.clone();
        while let Some(chunk) = output.next().await {
            match chunk {
                Ok(chunk) => {
                    if let Err(error) = spool.append(chunk.kind, &chunk.data) {
                        tracing::warn!(exec = %exec_id, %error, "cannot spool background output; dropping it");
                    }
                }
                Err(error) => {
                    tracing::debug!(exec = %exec_id, %error, "background output ended with an error");
                    break;
                }
            }
        }
        let code = with_timeout("exec exit code", DRAIN_WAIT, client.exec_exit_code(&record.engine_exec_id));
        let exit_code = code.await.ok();
        if let Err(error) = self.update(&exec_id, |r| {
            r.running = false;
            r.exit_code = exit_code;
        }) {
            tracing::warn!(exec = %exec_id, error = %error.into_wire(), "cannot record how a background exec ended");
        }
        self.pumping.lock().unwrap_or_else(|e| e.into_inner()).remove(&exec_id);
        tracing::info!(exec = %exec_id, ?exit_code, bytes = spool.end(), "background exec ended");
    }

    /// Whether the command still runs, asking the engine when no task of
    /// this worker follows it (after a restart); records an end it learns of.
    async fn refresh(&self, client: &EngineClient, record: ExecRecord) -> Outcome<ExecRecord> {
        if self.is_pumping(&record.exec_id) {
            return Ok(record);
        }
        if !record.running {
            // Ended while its container was stopped: what the relay kept (and the relay's
            // directory) is taken once the container runs again.
            if record.relay.is_some() && !record.drained && container_running(client, &record.container_id).await {
                self.spawn_follow(client.clone(), record.clone());
            }
            return Ok(record);
        }
        if record.relay.is_some() && !record.drained {
            // Output not yet copied (an engine answered only now): follow it;
            // the task records the end once the output is in.
            self.spawn_follow(client.clone(), record.clone());
            return Ok(record);
        }
        let (running, exit_code) = match client.inspect_exec(&record.engine_exec_id).await {
            Ok(inspect) => (inspect.running, inspect.exit_code),
            // The engine forgot it (container restarted or removed): it ended, how is unknown.
            Err(e) if e.is_not_found() => (false, None),
            Err(e) => return Err(e.into()),
        };
        if running {
            return Ok(record);
        }
        self.update(&record.exec_id, |r| {
            r.running = false;
            r.exit_code = r.exit_code.or(exit_code);
        })
    }

    async fn running(&self, client: &EngineClient, record: &ExecRecord) -> bool {
        match client.inspect_exec(&record.engine_exec_id).await {
            Ok(inspect) => inspect.running,
            Err(_) => false,
        }
    }

    /// `container.exec.background.kill`.
    pub(crate) async fn kill(
        &self,
        engine: &impl OwnedContainers,
        request: ContainerExecBackgroundKill,
    ) -> Outcome<ContainerExecBackgroundKillResult> {
        let record = self.load(&request.exec_id, request.tenant.as_deref())?;
        let client = engine.serving_client().await?;
        let record = self.refresh(&client, record).await?;
        if !record.running || !self.running(&client, &record).await {
            let record = self.settled(&record.exec_id).await?;
            return Ok(ended(&record, true));
        }
        let signal = request.signal.as_deref().map_or(Some(15), signal_number).ok_or_else(|| {
            Failure::wire(ErrorCode::InvalidRequest, format!("`signal`: unknown signal {:?}", request.signal))
        })?;
        let mut sent = vec![signal];
        let target = Marked {
            marker: EXEC_MARKER,
            value: &record.exec_id,
            user: record.user.as_deref(),
            exec_id: Some(&record.engine_exec_id),
        };
        signal_marked(&client, &record.container_id, &target, signal).await?;
        let grace = request.grace_ms.map(Duration::from_millis);
        let mut stopped = self.wait_stopped(&client, &record, grace.unwrap_or(KILL_WAIT)).await;
        if !stopped && grace.is_some() {
            sent.push(SIGKILL);
            signal_marked(&client, &record.container_id, &target, SIGKILL).await?;
            stopped = self.wait_stopped(&client, &record, KILL_WAIT).await;
        }
        if !stopped {
            return Err(Failure::wire(
                ErrorCode::Timeout,
                format!("`{}` was signalled but still runs", record.exec_id),
            ));
        }
        let exit_code = match client.inspect_exec(&record.engine_exec_id).await {
            Ok(inspect) => inspect.exit_code,
            Err(_) => None,
        };
        let by_signal = exit_code.and_then(signal_of_exit).filter(|n| sent.contains(n));
        self.settled(&record.exec_id).await?;
        let record = self.update(&record.exec_id, |r| {
            r.running = false;
            r.exit_code = r.exit_code.or(exit_code);
            r.signal = by_signal.map(signal_name);
        })?;
        tracing::info!(exec = %record.exec_id, signal = ?record.signal, exit_code = ?record.exit_code, "background exec killed");
        Ok(ended(&record, false))
    }

    async fn wait_stopped(&self, client: &EngineClient, record: &ExecRecord, limit: Duration) -> bool {
        let started = Instant::now();
        loop {
            if !self.running(client, record).await {
                return true;
            }
            if started.elapsed() >= limit {
                return false;
            }
            smol::Timer::after(Duration::from_millis(25)).await;
        }
    }

    /// The record once this worker's copy of the output is complete (bounded wait).
    async fn settled(&self, exec_id: &str) -> Outcome<ExecRecord> {
        let started = Instant::now();
        while self.is_pumping(exec_id) && started.elapsed() < DRAIN_WAIT {
            smol::Timer::after(Duration::from_millis(10)).await;
        }
        self.load(exec_id, None)
    }

    /// `container.exec.background.capture`.
    pub(crate) async fn capture(
        &self,
        engine: &impl OwnedContainers,
        request: ContainerExecBackgroundCapture,
    ) -> Outcome<ContainerExecBackgroundCaptureResult> {
        let record = self.load(&request.exec_id, request.tenant.as_deref())?;
        let record = match engine.serving_client().await {
            Ok(client) => self.refresh(&client, record).await?,
            // Without an engine the spool still answers.
            Err(_) => record,
        };
        // Read after deciding `running`: an ended command's output is then complete.
        let dir = self.record_path(&record.exec_id)?;
        let read = spool::read(&dir, request.offset, request.max_bytes() as usize)
            .map_err(|e| internal("reading the spool", e))?;
        if request.offset > read.end {
            return Err(Failure::wire(
                ErrorCode::InvalidRequest,
                format!("`offset`: {} is beyond the {} bytes of output so far", request.offset, read.end),
            ));
        }
        let encoding = request.encoding;
        let chunks = read
            .chunks
            .into_iter()
            .map(|(kind, data)| OutputChunk {
                stream: match kind {
                    OutputKind::Stdout => Stream::Stdout,
                    OutputKind::Stderr => Stream::Stderr,
                },
                data: encoding.encode(&data),
            })
            .collect();
        Ok(ContainerExecBackgroundCaptureResult {
            exit_code: exit_code_of(&record),
            exec_id: record.exec_id,
            running: record.running,
            offset: read.offset,
            next_offset: read.next,
            lost_bytes: read.lost,
            encoding,
            chunks,
        })
    }

    /// Waits (bounded) for the output copies to finish, e.g. on shutdown.
    pub(crate) async fn shutdown(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        // Copies cannot outlive the worker: the engine connections go with it.
        for task in tasks {
            task.cancel().await;
        }
    }
}

/// How long a relay may go on after the command's exec ended (it cannot, normally:
/// the wrapper waits for it) before the follow task gives up on it.
const ORPHAN_GRACE: Duration = Duration::from_secs(30);

/// Returns once the command's exec has been over for [`ORPHAN_GRACE`] (never while it runs).
async fn abandoned(client: &EngineClient, record: &ExecRecord) {
    let mut over_since: Option<Instant> = None;
    loop {
        smol::Timer::after(Duration::from_secs(5)).await;
        match client.inspect_exec(&record.engine_exec_id).await {
            Ok(inspect) if inspect.running => over_since = None,
            Ok(_) => {
                over_since.get_or_insert_with(Instant::now);
            }
            Err(e) if e.is_not_found() => {
                over_since.get_or_insert_with(Instant::now);
            }
            Err(_) => {}
        }
        if over_since.is_some_and(|since| since.elapsed() >= ORPHAN_GRACE) {
            return;
        }
    }
}

/// How long a follow task waits for a stopped container to run again.
const RESTART_WAIT: Duration = Duration::from_secs(10);

async fn container_running(client: &EngineClient, container: &str) -> bool {
    client.inspect_container(container).await.is_ok_and(|inspect| inspect.state.running)
}

/// Whether the container runs, or runs again within [`RESTART_WAIT`] (false at once when it is gone).
async fn container_back(client: &EngineClient, container: &str) -> bool {
    let started = Instant::now();
    loop {
        match client.inspect_container(container).await {
            Ok(inspect) if inspect.state.running => return true,
            Ok(_) if started.elapsed() < RESTART_WAIT => smol::Timer::after(Duration::from_millis(250)).await,
            _ => return false,
        };
    }
}

/// Makes the relay's directory and FIFOs in the container, as the command's
/// user; `false` where the relay cannot work (no `sh`, `mkfifo` or writable `/tmp`).
async fn prepare_relay(client: &EngineClient, container: &str, dir: &str, user: Option<&str>) -> bool {
    let spec = ExecSpec {
        cmd: ["sh", "-c", relay::PREPARE, "sh", dir].into_iter().map(String::from).collect(),
        user: user.map(String::from),
        ..ExecSpec::default()
    };
    match client.exec(container, &spec, HELPER_LIMITS).await {
        Ok(out) if out.exit_code == 0 => true,
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            tracing::info!(container, exit = out.exit_code, stderr = %stderr.trim(), "no output relay in this container: background output is copied only while the worker runs");
            false
        }
        Err(error) => {
            tracing::info!(container, %error, "no output relay in this container: background output is copied only while the worker runs");
            false
        }
    }
}

/// Removes a relay's directory in the container (best effort).
async fn remove_relay(client: &EngineClient, container: &str, dir: &str, user: Option<&str>) {
    let rm = ExecSpec {
        cmd: vec!["rm".into(), "-rf".into(), dir.into()],
        user: user.map(String::from),
        ..ExecSpec::default()
    };
    if let Err(error) = client.exec(container, &rm, HELPER_LIMITS).await {
        tracing::debug!(container, %error, "cannot remove a relay directory");
    }
}

/// Runs one reader exec from the spool's offsets and copies what it sends
/// into the spool: `Ok(true)` once the relay said everything was sent, `Ok(false)`
/// when the reader ended before that. Stops at the first byte the spool cannot
/// take, so the next reader starts where the spool really ends.
async fn read_relay(
    client: &EngineClient,
    record: &ExecRecord,
    dir: &str,
    spool: &mut SpoolWriter,
) -> Result<bool, String> {
    // A reader of an earlier worker outlives it (the engine drops what it writes) until the
    // command ends: end it first, so worker restarts do not pile readers up.
    let stale = Marked { marker: READER_MARKER, value: &record.exec_id, user: record.user.as_deref(), exec_id: None };
    if let Err(error) = signal_marked(client, &record.container_id, &stale, SIGKILL).await {
        tracing::debug!(exec = %record.exec_id, %error, "cannot end an earlier relay reader");
    }
    let at = spool.streams();
    let spec = ExecSpec {
        cmd: relay::reader(dir, at.stdout, at.stderr),
        env: vec![format!("{READER_MARKER}={}", record.exec_id)],
        user: record.user.clone(),
        ..ExecSpec::default()
    };
    let reader = client.create_exec(&record.container_id, &spec).await.map_err(|e| e.to_string())?;
    let mut output = client.start_exec(&reader, false).await.map_err(|e| e.to_string())?;
    let mut decoder = relay::Decoder::default();
    let mut frames = VecDeque::new();
    let mut complaint = Vec::new();
    while let Some(chunk) = output.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        if chunk.kind == OutputKind::Stderr {
            let room = COMPLAINT_BYTES.saturating_sub(complaint.len());
            complaint.extend_from_slice(&chunk.data[..chunk.data.len().min(room)]);
            continue;
        }
        decoder.decode(chunk.data, &mut frames)?;
        for frame in frames.drain(..) {
            match frame {
                Frame::Data(kind, data) => spool.append(kind, &data).map_err(|e| format!("spooling: {e}"))?,
                Frame::Lost(kind, to) => {
                    let lost = relay::lost_bytes(spool.streams().of(kind), to)?;
                    tracing::warn!(exec = %record.exec_id, ?kind, lost, "background output was dropped in the container before the worker could copy it");
                    spool.skip(kind, lost).map_err(|e| format!("spooling: {e}"))?;
                }
                Frame::End => return Ok(true),
            }
        }
    }
    if !complaint.is_empty() {
        tracing::debug!(exec = %record.exec_id, stderr = %String::from_utf8_lossy(&complaint).trim(), "the relay reader complained");
    }
    Ok(false)
}

/// The exit code to report: only for a command that ended without our signal.
fn exit_code_of(record: &ExecRecord) -> Option<i32> {
    if record.running || record.signal.is_some() {
        return None;
    }
    record.exit_code.map(|code| i32::try_from(code).unwrap_or(i32::MIN))
}

fn ended(record: &ExecRecord, already_exited: bool) -> ContainerExecBackgroundKillResult {
    ContainerExecBackgroundKillResult {
        exec_id: record.exec_id.clone(),
        already_exited,
        exit_code: exit_code_of(record),
        signal: record.signal.clone(),
    }
}
