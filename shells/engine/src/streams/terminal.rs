//! Terminals: an exec with a TTY in the container, attached through the
//! engine's upgraded connection — no local PTY and no CLI process, so it
//! works alike with Docker and Podman wherever the engine runs.
//!
//! The exec carries `CROPSCODE_SESSION=<sessionId>` in its environment (see
//! [`signals`](super::signals)). Ending a terminal signals every process
//! carrying it: `HUP` (a hang-up, as when a terminal window closes), then
//! `KILL` for whatever is still there after a grace period. When the shell
//! exits on its own, leftovers (background jobs) are reaped the same way.

use std::time::{Duration, Instant};

use cropscode_core::protocol::ErrorCode;
use cropscode_core::protocol::commands::{TerminalOpen, TerminalResize, TerminalResizeResult};
use cropscode_core::stream::StreamId;

use super::signals::{Marked, SESSION_MARKER, signal_marked};
use super::{ExecHandle, Live, LiveStreams, Phase, Pipe};
use crate::worker::{Failure, Outcome};
use crate::{ExecSpec, WorkerEngine};

/// How long processes get to exit after `HUP` before `KILL`.
const HANGUP_GRACE: Duration = Duration::from_secs(2);
const SIGHUP: u8 = 1;
const SIGKILL: u8 = 9;

impl LiveStreams {
    /// `terminal.open` (a new session): starts the shell and keeps its connection under `stream.channel`.
    pub(crate) async fn open_terminal(
        &self,
        engine: &WorkerEngine,
        stream: StreamId,
        request: TerminalOpen,
    ) -> Outcome<()> {
        let (client, owned) =
            super::running_container(engine, &request.container_id, request.tenant.as_deref()).await?;
        engine.check_user(request.user.as_deref(), &owned.inspect.config.user)?;
        let mut env = request.env.to_pairs();
        env.push(format!("{SESSION_MARKER}={}", stream.session_id));
        let spec = ExecSpec {
            cmd: request.command.clone(),
            env,
            working_dir: request.working_dir.clone(),
            user: request.user.clone(),
            tty: true,
            attach_stdin: true,
            privileged: false,
        };
        let exec_id = client.create_exec(&owned.id, &spec).await?;
        let io = client.attach_exec(&exec_id, true).await?;
        if let Err(error) = client.resize_exec(&exec_id, request.cols, request.rows).await {
            // The shell may have exited at once; its end follows through the stream.
            tracing::debug!(exec = %exec_id, %error, "could not size the new terminal");
        }
        tracing::info!(
            session = %stream.session_id,
            channel = stream.channel.get(),
            container = %owned.id,
            exec = %exec_id,
            "terminal opened"
        );
        let exec = ExecHandle {
            client,
            container: owned.id,
            exec_id,
            session_id: stream.session_id.clone(),
            user: request.user.clone(),
        };
        self.insert(
            stream.channel.get(),
            Live { session_id: stream.session_id, pipe: Some(Pipe::Exec(io)), exec: Some(exec), phase: Phase::Flowing },
        );
        Ok(())
    }

    /// `terminal.resize`.
    pub(crate) async fn resize_terminal(&self, request: TerminalResize) -> Outcome<TerminalResizeResult> {
        let Some(exec) = self.exec_of(&request.session_id) else {
            return Err(Failure::wire(
                ErrorCode::NotFound,
                format!("no terminal session `{}` on this worker", request.session_id),
            ));
        };
        exec.client.resize_exec(&exec.exec_id, request.cols, request.rows).await?;
        Ok(TerminalResizeResult { session_id: request.session_id, cols: request.cols, rows: request.rows })
    }
}

/// Ends a terminal: `HUP` to its processes, `KILL` to what is left after a grace period.
pub(super) async fn end(exec: ExecHandle) {
    let started = Instant::now();
    signal(&exec, SIGHUP).await;
    while started.elapsed() < HANGUP_GRACE {
        match exec.client.inspect_exec(&exec.exec_id).await {
            Ok(inspect) if inspect.running => smol::Timer::after(Duration::from_millis(50)).await,
            _ => break,
        };
    }
    reap(exec).await;
}

/// `KILL` to every process still carrying the session's marker.
pub(super) async fn reap(exec: ExecHandle) {
    let killed = signal(&exec, SIGKILL).await;
    if killed > 0 {
        tracing::info!(session = %exec.session_id, killed, "killed processes the terminal left behind");
    }
}

async fn signal(exec: &ExecHandle, signal: u8) -> u32 {
    let target = Marked {
        marker: SESSION_MARKER,
        value: &exec.session_id,
        user: exec.user.as_deref(),
        exec_id: Some(&exec.exec_id),
    };
    match signal_marked(&exec.client, &exec.container, &target, signal).await {
        Ok(count) => count,
        // The container is gone or stopped, and its processes with it.
        Err(error) if matches!(error.code(), ErrorCode::NotFound | ErrorCode::Conflict) => 0,
        Err(error) => {
            tracing::warn!(session = %exec.session_id, %error, "could not signal the terminal's processes");
            0
        }
    }
}
