//! The tasks that copy a background exec's output into its spool: *follow* (from the
//! relay in the container, resumable after a worker restart or a container stop) and
//! *pump* (attached output, while this worker runs); and the relay's helper execs.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use cropscode_engine_api::{EngineClient, ExecLimits, ExecSpec, OutputKind, OutputStream, with_timeout};

use super::{BackgroundExecs, DRAIN_WAIT, ExecRecord, SIGKILL, internal};
use crate::streams::relay::{self, Frame};
use crate::streams::signals::{Marked, READER_MARKER, signal_marked};
use crate::streams::spool::SpoolWriter;

/// What is kept of a relay reader's stderr, for the log.
const COMPLAINT_BYTES: usize = 1024;
/// Reader execs a follow task starts before it gives up while the container runs.
const READER_ATTEMPTS: u32 = 5;
/// Bounds the short helper execs (prepare the relay, remove it).
const HELPER_LIMITS: ExecLimits = ExecLimits { output_limit: 4096, timeout: Duration::from_secs(15) };

impl BackgroundExecs {
    /// Starts copying a relayed exec's output, unless a task already does.
    pub(super) fn spawn_follow(&self, client: EngineClient, record: ExecRecord) {
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
    pub(super) async fn pump(
        self,
        client: EngineClient,
        record: ExecRecord,
        mut output: OutputStream,
        mut spool: SpoolWriter,
    ) {
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
}

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

pub(super) async fn container_running(client: &EngineClient, container: &str) -> bool {
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
pub(super) async fn prepare_relay(client: &EngineClient, container: &str, dir: &str, user: Option<&str>) -> bool {
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
pub(super) async fn remove_relay(client: &EngineClient, container: &str, dir: &str, user: Option<&str>) {
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
