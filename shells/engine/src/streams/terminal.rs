//! Terminals: an exec with a TTY in the container, attached through the
//! engine's upgraded connection — no local PTY and no CLI process, so it
//! works alike with Docker and Podman wherever the engine runs.
//!
//! The exec carries `CROPSCODE_SESSION=<sessionId>` in its environment (see
//! [`signals`](super::signals)), by which [`session`](super::session) ends
//! the terminal's processes.

use cropscode_core::protocol::ErrorCode;
use cropscode_core::protocol::commands::{TerminalOpen, TerminalResize, TerminalResizeResult};
use cropscode_core::stream::StreamId;
use cropscode_engine_api::ExecSpec;

use super::live::{Live, LiveStreams, Phase, Pipe};
use super::session::ExecHandle;
use super::signals::SESSION_MARKER;
use crate::outcome::{Failure, Outcome};
use crate::owned::OwnedContainers;

impl LiveStreams {
    /// `terminal.open` (a new session): starts the shell and keeps its connection under `stream.channel`.
    pub(crate) async fn open_terminal(
        &self,
        engine: &impl OwnedContainers,
        stream: StreamId,
        request: TerminalOpen,
    ) -> Outcome<()> {
        let (client, owned) = engine.running_container(&request.container_id, request.tenant.as_deref()).await?;
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
