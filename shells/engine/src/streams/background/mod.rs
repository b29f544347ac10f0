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
//!
//! ```text
//!  commands.rs  start / kill / capture ──► the records (here) and the spool
//!       │ starts
//!       ▼
//!  follow.rs    follow (relay → spool) and pump (attached output → spool) tasks
//! ```
//!
//! This file holds what both use: [`BackgroundExecs`] and the records (`exec.json`).

mod commands;
mod follow;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cropscode_core::protocol::ErrorCode;
use serde::{Deserialize, Serialize};

use crate::outcome::{Failure, Outcome};

/// Output kept per background exec (8 MiB): the newest bytes win.
pub(crate) const DEFAULT_SPOOL_BYTES: u64 = 8 * 1024 * 1024;
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

    fn spawn(&self, future: impl std::future::Future<Output = ()> + Send + 'static) {
        let task = smol::spawn(future);
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
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
