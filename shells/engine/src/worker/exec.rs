//! `container.exec`: run an argument vector in a running container to completion.
//!
//! The command goes to the engine as an argument vector (never through a shell). Output is
//! read as it comes, each stream capped at `maxOutputBytes` (the rest is drained, so the
//! exit code is still learnt). With `stdin`, the exec is attached (an upgraded
//! connection): the bytes are written and the write side closed, which ends the process's
//! stdin, while its output is read at the same time.
//!
//! Neither engine's API can kill an exec'd process. Each one carries a marker in its
//! environment (`CROPSCODE_EXEC=c-…`, inherited by its children), so when `timeoutMs`
//! passes the worker sends SIGKILL to every process holding it, through a small `sh`
//! script in the container ([`signals`](crate::streams::signals)): the command and its
//! children, with any engine, also one in a VM. Without `sh` in the container it kills the
//! exec's own process from the host when it can tell it is the same process: on Linux,
//! with the engine on this machine, the exec's host PID must be in the container's PID
//! namespace. Otherwise the answer says the process may still be running.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cropscode_core::protocol::ErrorCode;
use cropscode_core::protocol::commands::{ContainerExec, ContainerExecResult};
use futures_lite::{AsyncWriteExt, future};

use cropscode_engine_api::{
    Endpoint, EngineClient, EngineError, ExecOutput, ExecSpec, OutputStream, collect_output, with_timeout,
};

use super::WorkerEngine;
use super::ownership::gone;
use crate::outcome::{Failure, Outcome};
use crate::owned::{Owned, OwnedContainers};
use crate::streams::signals::{EXEC_MARKER, Marked, signal_marked};

impl WorkerEngine {
    pub(crate) async fn exec(&self, request: ContainerExec) -> Outcome<ContainerExecResult> {
        let client = self.shared.client().await?;
        let owned = self.resolve(&client, &request.container_id, request.tenant.as_deref()).await?;
        self.check_user(request.user.as_deref(), &owned.inspect.config.user)?;
        let spec = ExecSpec {
            cmd: request.command.clone(),
            env: request.env.to_pairs(),
            working_dir: request.working_dir.clone(),
            user: request.user.clone(),
            privileged: request.privileged,
            ..ExecSpec::default()
        };
        let started = Instant::now();
        let limit = Duration::from_millis(request.timeout_ms());
        let stdin = request.stdin.as_deref().map(str::as_bytes);
        let output = run(&client, &owned, &spec, stdin, request.max_output_bytes() as usize, limit)
            .await
            .map_err(gone(&request.container_id))?;
        let output = match output {
            Ran::Exited(output) => output,
            Ran::TimedOut { killed } => {
                let program = request.command.first().map(String::as_str).unwrap_or_default();
                let fate = if killed {
                    "it was killed"
                } else {
                    "it may still be running in the container (the engine cannot stop an exec)"
                };
                let message = format!("`{program}` did not finish within {} ms; {fate}", limit.as_millis());
                return Err(Failure::wire(ErrorCode::Timeout, message));
            }
        };
        let encoding = request.output_encoding;
        Ok(ContainerExecResult {
            exit_code: i32::try_from(output.exit_code).unwrap_or(i32::MIN),
            stdout: encoding.encode(&output.stdout),
            stderr: encoding.encode(&output.stderr),
            encoding,
            truncated: output.truncated,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }
}

/// How a process run to its end went.
pub(crate) enum Ran {
    Exited(ExecOutput),
    /// The time limit passed; `killed` says whether the worker could kill the process.
    TimedOut {
        killed: bool,
    },
}

/// Runs `spec` in the container to its end (or `limit`), feeding it `stdin` when given.
pub(crate) async fn run(
    client: &EngineClient,
    container: &Owned,
    spec: &ExecSpec,
    stdin: Option<&[u8]>,
    output_limit: usize,
    limit: Duration,
) -> Result<Ran, EngineError> {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    let marker = format!("c-{epoch:x}-{}", SERIAL.fetch_add(1, Ordering::Relaxed));
    let mut env = spec.env.clone();
    env.push(format!("{EXEC_MARKER}={marker}"));
    let spec = ExecSpec { tty: false, attach_stdin: stdin.is_some(), env, ..spec.clone() };
    let exec_id = client.create_exec(&container.id, &spec).await?;
    let work = async {
        let mut output = match stdin {
            None => collect_output(client.start_exec(&exec_id, false).await?, output_limit).await?,
            Some(input) => {
                let (reader, mut writer) = futures_lite::io::split(client.attach_exec(&exec_id, false).await?);
                let feed = async move {
                    // A process that exits without reading its input breaks the pipe: not an error.
                    let _ = writer.write_all(input).await;
                    let _ = writer.close().await;
                };
                let read = collect_output(OutputStream::from_reader(reader, false), output_limit);
                future::zip(feed, read).await.1?
            }
        };
        output.exit_code = client.exec_exit_code(&exec_id).await?;
        Ok(output)
    };
    match with_timeout("exec", limit, work).await {
        Ok(output) => Ok(Ran::Exited(output)),
        Err(EngineError::Timeout { .. }) => {
            let target =
                Marked { marker: EXEC_MARKER, value: &marker, user: spec.user.as_deref(), exec_id: Some(&exec_id) };
            let killed = match signal_marked(client, &container.id, &target, 9).await {
                Ok(_) => stopped(client, &exec_id).await,
                Err(error) => {
                    tracing::debug!(exec = %exec_id, %error, "killing by marker failed");
                    kill(client, &exec_id, container.inspect.state.pid).await
                }
            };
            tracing::info!(container = %container.id, exec = %exec_id, killed, "exec timed out");
            Ok(Ran::TimedOut { killed })
        }
        Err(error) => Err(error),
    }
}

/// Kills a timed-out exec when it provably runs in the container (see the module docs).
/// True when the process is gone.
async fn kill(client: &EngineClient, exec_id: &str, container_pid: i64) -> bool {
    let Ok(exec) = client.inspect_exec(exec_id).await else { return false };
    if !exec.running {
        return true;
    }
    if !cfg!(target_os = "linux") || !matches!(client.endpoint(), Endpoint::Unix(_)) {
        return false;
    }
    if exec.pid <= 0 || container_pid <= 0 || !same_pid_namespace(exec.pid, container_pid) {
        tracing::debug!(exec = %exec_id, pid = exec.pid, "cannot tell that the exec's process is in the container");
        return false;
    }
    let killed = smol::process::Command::new("kill")
        .args(["-KILL", "--", &exec.pid.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success());
    killed && stopped(client, exec_id).await
}

/// Whether the exec's process is gone (the engine notices an exit a moment later).
async fn stopped(client: &EngineClient, exec_id: &str) -> bool {
    for _ in 0..20 {
        match client.inspect_exec(exec_id).await {
            Ok(exec) if exec.running => smol::Timer::after(Duration::from_millis(50)).await,
            _ => return true,
        };
    }
    false
}

fn same_pid_namespace(pid: i64, other: i64) -> bool {
    let namespace = |pid: i64| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    match (namespace(pid), namespace(other)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}
