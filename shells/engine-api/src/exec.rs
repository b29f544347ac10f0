//! Running a command in a container.
//!
//! [`EngineClient::exec`] runs one to completion: create the exec, start it attached and
//! read its multiplexed output until the process closes it (keeping at most a cap of each
//! stream and draining the rest, so the exit code is still learnt), then read the exit
//! code from `GET /exec/{id}/json`. The lower-level calls are public for the terminal
//! work: [`EngineClient::attach_exec`] upgrades the connection for stdin.
//!
//! A timeout abandons the exec: the connection is dropped, the engine stops sending, but
//! neither engine's API can kill an exec'd process, so it may run on inside the container
//! until it exits or the container stops.

use std::time::Duration;

use cropscode_core::backoff::BackoffConfig;
use serde::{Deserialize, Serialize};

use crate::client::{ApiRequest, EngineClient, Query, path_name, with_timeout};
use crate::containers::nullable;
use crate::error::{EngineError, Result};
use crate::framing::{OutputKind, OutputStream};
use crate::io::Upgraded;

/// What to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSpec {
    /// The command and its arguments (no shell unless you name one).
    pub cmd: Vec<String>,
    /// Extra environment, `KEY=value`.
    pub env: Vec<String>,
    /// Working directory (the container's by default).
    pub working_dir: Option<String>,
    /// User (the container's by default).
    pub user: Option<String>,
    /// Allocate a TTY (output then is raw, stdout only).
    pub tty: bool,
    /// Attach stdin (only useful with [`EngineClient::attach_exec`]).
    pub attach_stdin: bool,
    /// Run with extended privileges.
    pub privileged: bool,
}

/// Bounds of [`EngineClient::exec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecLimits {
    /// Bytes kept of stdout, and separately of stderr; the rest is read and dropped.
    pub output_limit: usize,
    /// The whole run (create, output, exit code) must finish within this.
    pub timeout: Duration,
}

impl Default for ExecLimits {
    fn default() -> Self {
        ExecLimits { output_limit: 1024 * 1024, timeout: Duration::from_secs(60) }
    }
}

/// The outcome of a finished exec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The process's exit code.
    pub exit_code: i64,
    /// Standard output, at most `output_limit` bytes.
    pub stdout: Vec<u8>,
    /// Standard error, at most `output_limit` bytes.
    pub stderr: Vec<u8>,
    /// Some output was dropped because a stream exceeded `output_limit`.
    pub truncated: bool,
}

/// Reads a process's output to its end, keeping at most `limit` bytes of each stream (the
/// rest is read and dropped, and `truncated` set). The exit code is left at 0.
pub async fn collect_output(mut output: OutputStream, limit: usize) -> Result<ExecOutput> {
    let mut result = ExecOutput::default();
    while let Some(chunk) = output.next().await {
        let chunk = chunk?;
        let kept = match chunk.kind {
            OutputKind::Stdout => &mut result.stdout,
            OutputKind::Stderr => &mut result.stderr,
        };
        let room = limit.saturating_sub(kept.len());
        if chunk.data.len() > room {
            result.truncated = true;
        }
        kept.extend_from_slice(&chunk.data[..room.min(chunk.data.len())]);
    }
    Ok(result)
}

/// `GET /exec/{id}/json`, the fields the worker uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecInspect {
    /// The exec's id.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// The process is still running.
    #[serde(default)]
    pub running: bool,
    /// Exit code, once it has exited.
    pub exit_code: Option<i64>,
    /// Host PID of the process (0 when not running).
    #[serde(default)]
    pub pid: i64,
    /// The container it runs in.
    #[serde(rename = "ContainerID", default)]
    pub container_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ExecCreateBody<'a> {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    tty: bool,
    cmd: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    env: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    working_dir: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    privileged: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ExecStartBody {
    detach: bool,
    tty: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IdBody {
    id: String,
    #[serde(default, deserialize_with = "nullable")]
    #[allow(dead_code)]
    warnings: Vec<String>,
}

/// Pauses between exit-code polls: 2 ms doubling to 100 ms, exact.
const EXIT_CODE_POLL: BackoffConfig =
    BackoffConfig::new().with_initial(Duration::from_millis(2)).with_max(Duration::from_millis(100)).with_jitter(0.0);

impl EngineClient {
    /// Runs `spec` in the container to completion; see the module documentation.
    pub async fn exec(&self, container: &str, spec: &ExecSpec, limits: ExecLimits) -> Result<ExecOutput> {
        let spec = ExecSpec { tty: false, attach_stdin: false, ..spec.clone() };
        with_timeout("exec", limits.timeout, async {
            let exec_id = self.create_exec(container, &spec).await?;
            let output = self.start_exec(&exec_id, false).await?;
            let mut result = collect_output(output, limits.output_limit).await?;
            result.exit_code = self.exec_exit_code(&exec_id).await?;
            Ok(result)
        })
        .await
    }

    /// `POST /containers/{id}/exec`: prepares a process; returns the exec id.
    pub async fn create_exec(&self, container: &str, spec: &ExecSpec) -> Result<String> {
        if spec.cmd.is_empty() {
            return Err(EngineError::InvalidArgument("exec needs a command".into()));
        }
        let body = ExecCreateBody {
            attach_stdin: spec.attach_stdin,
            attach_stdout: true,
            attach_stderr: true,
            tty: spec.tty,
            cmd: &spec.cmd,
            env: &spec.env,
            working_dir: spec.working_dir.as_deref(),
            user: spec.user.as_deref(),
            privileged: spec.privileged,
        };
        let request = ApiRequest::post(format!("/containers/{}/exec", path_name(container)?)).json(&body)?;
        let created: IdBody = self.call_json(request).await?;
        Ok(created.id)
    }

    /// `POST /exec/{id}/start`, attached: the process's output until it closes it.
    pub async fn start_exec(&self, exec_id: &str, tty: bool) -> Result<OutputStream> {
        let request = ApiRequest::post(format!("/exec/{}/start", path_name(exec_id)?))
            .json(&ExecStartBody { detach: false, tty })?;
        let body = self.stream(request).await?;
        Ok(OutputStream::from_body(body, tty))
    }

    /// `POST /exec/{id}/start` with `Upgrade: tcp`: a two-way raw connection to the process
    /// (write its stdin, read its output with [`OutputStream::from_upgraded`]; closing the
    /// write side ends its stdin).
    pub async fn attach_exec(&self, exec_id: &str, tty: bool) -> Result<Upgraded> {
        let request = ApiRequest::post(format!("/exec/{}/start", path_name(exec_id)?))
            .json(&ExecStartBody { detach: false, tty })?;
        self.upgrade(request).await
    }

    /// `GET /exec/{id}/json`.
    pub async fn inspect_exec(&self, exec_id: &str) -> Result<ExecInspect> {
        self.call_json(ApiRequest::get(format!("/exec/{}/json", path_name(exec_id)?))).await
    }

    /// The exit code of an exec whose output has ended. The engine records it a moment
    /// after the output closes, so this asks again (briefly backing off) until it has;
    /// it waits as long as the process runs, so bound it with a timeout of your own.
    pub async fn exec_exit_code(&self, exec_id: &str) -> Result<i64> {
        let mut pauses = EXIT_CODE_POLL.build();
        loop {
            let inspect = self.inspect_exec(exec_id).await?;
            if let (false, Some(code)) = (inspect.running, inspect.exit_code) {
                return Ok(code);
            }
            smol::Timer::after(pauses.next_delay()).await;
        }
    }

    /// `POST /exec/{id}/resize`: the TTY of an exec is now `cols` × `rows`.
    pub async fn resize_exec(&self, exec_id: &str, cols: u16, rows: u16) -> Result<()> {
        let query = Query::new().push("h", rows.to_string()).push("w", cols.to_string()).finish();
        let request = ApiRequest::post(format!("/exec/{}/resize{query}", path_name(exec_id)?));
        self.call(request, Duration::ZERO).await?;
        Ok(())
    }
}
