//! Background execs: `container.exec.background`, `.kill` and `.capture`.
//!
//! A background exec is an ordinary exec started attached (no TTY), whose
//! output a task of the worker copies into a [spool](super::spool) under
//! `DATA_DIR/execs/<execId>/`, next to `exec.json` (container, engine exec
//! id, tenant, how it ended). Both are plain files, so `capture` answers from
//! any offset while the command runs, after it ended, after the orchestrator
//! reconnected and after the worker restarted. The exec carries
//! `CROPSCODE_EXEC=<execId>` in its environment, so `kill` reaches it and its
//! children ([`signals`](super::signals)).
//!
//! Output is copied only while the worker runs: after a restart a command
//! that is still running is reported `running`, and what it writes from then
//! on is not captured (its engine connection ended with the old worker).

use std::collections::HashSet;
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
use serde::{Deserialize, Serialize};

use super::signals::{EXEC_MARKER, Marked, signal_marked, signal_name, signal_number, signal_of_exit};
use super::spool::{self, SpoolWriter};
use crate::worker::{Failure, Outcome};
use crate::{EngineClient, ExecSpec, OutputKind, OutputStream, WorkerEngine};

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
        let Ok(dir) = self.dir() else { return };
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut ended: Vec<(u64, String)> = entries
            .flatten()
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|exec_id| exec_id != keep)
            .filter_map(|exec_id| self.load(&exec_id, None).ok())
            .filter(|record| !record.running)
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

    fn is_pumping(&self, exec_id: &str) -> bool {
        self.pumping.lock().map(|p| p.contains(exec_id)).unwrap_or(false)
    }

    /// `container.exec.background`.
    pub(crate) async fn start(
        &self,
        engine: &WorkerEngine,
        request: ContainerExecBackground,
    ) -> Outcome<ContainerExecBackgroundResult> {
        let dir = self.dir()?.to_path_buf();
        let client = super::serving_client(engine).await?;
        let owned = engine.resolve(&client, &request.container_id, request.tenant.as_deref()).await?;
        engine.check_user(request.user.as_deref(), &owned.inspect.config.user)?;
        if !owned.inspect.state.running {
            return Err(Failure::wire(
                ErrorCode::Conflict,
                format!("container `{}` is not running; start it first", request.container_id),
            ));
        }
        let now = now_unix();
        let exec_id = format!("x-{:x}-{}", now.as_millis(), self.serial.fetch_add(1, Ordering::Relaxed));
        let mut env = request.env.to_pairs();
        env.push(format!("{EXEC_MARKER}={exec_id}"));
        let spec = ExecSpec {
            cmd: request.command.clone(),
            env,
            working_dir: request.working_dir.clone(),
            user: request.user.clone(),
            privileged: request.privileged,
            ..ExecSpec::default()
        };
        let engine_exec_id = client.create_exec(&owned.id, &spec).await?;
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
        };
        self.store(&record)?;
        self.prune(&exec_id);
        let output = client.start_exec(&engine_exec_id, false).await?;
        self.pumping.lock().unwrap_or_else(|e| e.into_inner()).insert(exec_id.clone());
        let task = smol::spawn(self.clone().pump(client, record.clone(), output, spool));
        {
            let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            tasks.retain(|t| !t.is_finished());
            tasks.push(task);
        }
        tracing::info!(exec = %exec_id, container = %owned.id, engine_exec = %engine_exec_id, "background exec started");
        Ok(ContainerExecBackgroundResult { exec_id, container_id: owned.id })
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
        let code =
            crate::client::with_timeout("exec exit code", DRAIN_WAIT, client.exec_exit_code(&record.engine_exec_id));
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
        if !record.running || self.is_pumping(&record.exec_id) {
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
        engine: &WorkerEngine,
        request: ContainerExecBackgroundKill,
    ) -> Outcome<ContainerExecBackgroundKillResult> {
        let record = self.load(&request.exec_id, request.tenant.as_deref())?;
        let client = super::serving_client(engine).await?;
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
        engine: &WorkerEngine,
        request: ContainerExecBackgroundCapture,
    ) -> Outcome<ContainerExecBackgroundCaptureResult> {
        let record = self.load(&request.exec_id, request.tenant.as_deref())?;
        let record = match super::serving_client(engine).await {
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
