//! `container.exec.background`, `.kill` and `.capture`: the commands, answered from the
//! records and the spool; `start` hands the output to a [follow](super::follow) or pump task.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cropscode_core::protocol::ErrorCode;
use cropscode_core::protocol::commands::{
    ContainerExecBackground, ContainerExecBackgroundCapture, ContainerExecBackgroundCaptureResult,
    ContainerExecBackgroundKill, ContainerExecBackgroundKillResult, ContainerExecBackgroundResult, LABEL_TENANT,
    OutputChunk, OutputStream as Stream,
};
use cropscode_engine_api::{EngineClient, ExecSpec, OutputKind};

use super::follow::{container_running, prepare_relay, remove_relay};
use super::{BackgroundExecs, DRAIN_WAIT, ExecRecord, SIGKILL, internal, now_unix};
use crate::outcome::{Failure, Outcome};
use crate::owned::OwnedContainers;
use crate::streams::relay;
use crate::streams::signals::{EXEC_MARKER, Marked, signal_marked, signal_name, signal_number, signal_of_exit};
use crate::streams::spool::{self, SpoolWriter};

/// How long `kill` waits for the command to end when no `graceMs` is given.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl BackgroundExecs {
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
}

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
