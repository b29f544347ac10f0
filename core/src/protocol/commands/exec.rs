//! `container.exec`, `container.exec.background`, `container.exec.background.kill`,
//! `container.exec.background.capture`.
//!
//! A foreground exec runs to completion and answers with its bounded output.
//! A background exec answers at once with an `execId`; its output is spooled
//! by the worker and read later with `capture` from a byte offset.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};

use super::CommandParams;
use super::bounds::*;
use super::container::validate_target;
use super::content::{Encoding, EnvVars, Length};
use super::validate::{self as check, Check};

/// `container.exec`: run a command in a running container to completion.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerExec {
    /// Target container id or name.
    pub container_id: String,
    /// Tenant the container must belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Argument vector; `command[0]` is the program. Never run through a shell by the worker.
    pub command: Vec<String>,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "EnvVars::is_empty")]
    pub env: EnvVars,
    /// Absolute working directory; absent: the container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// User to run as; absent: the container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Run with extended privileges. Default `false`; refused by the `baseline` and `restricted` floors.
    #[serde(default)]
    pub privileged: bool,
    /// Kill the command after this many milliseconds (answer: `timeout`), 1..=86400000. Default 600000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Most bytes kept of each of stdout and stderr, 0..=4194304. Default 1048576.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<u32>,
    /// Bytes written to the command's stdin (UTF-8), then stdin is closed. Absent: no stdin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// How `stdout` and `stderr` are encoded in the result. Default `utf8`.
    #[serde(default)]
    pub output_encoding: Encoding,
}

impl ContainerExec {
    /// The timeout to apply.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms.unwrap_or(DEFAULT_EXEC_TIMEOUT_MS)
    }

    /// The per-stream output cap to apply.
    pub fn max_output_bytes(&self) -> u32 {
        self.max_output_bytes.unwrap_or(DEFAULT_MAX_OUTPUT_BYTES)
    }
}

impl fmt::Debug for ContainerExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerExec")
            .field("container_id", &self.container_id)
            .field("tenant", &self.tenant)
            .field("command", &self.command)
            .field("env", &self.env)
            .field("working_dir", &self.working_dir)
            .field("user", &self.user)
            .field("privileged", &self.privileged)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_output_bytes", &self.max_output_bytes)
            .field("stdin", &self.stdin.as_ref().map(|s| Length(s.len())))
            .field("output_encoding", &self.output_encoding)
            .finish()
    }
}

/// Checks what every exec path shares: target, argv, env, working dir, user.
fn validate_process(
    container_id: &str,
    tenant: Option<&str>,
    command: &[String],
    env: &EnvVars,
    working_dir: Option<&str>,
    user: Option<&str>,
) -> Check {
    validate_target(container_id, tenant)?;
    check::argv(&"command", command, false)?;
    check::env(&"env", &env.0)?;
    if let Some(dir) = working_dir {
        check::container_path(&"workingDir", dir)?;
    }
    if let Some(user) = user {
        check::user(&"user", user)?;
    }
    Ok(())
}

impl CommandParams for ContainerExec {
    const NAME: &'static str = "container.exec";
    type Output = ContainerExecResult;

    fn validate(&self) -> Check {
        validate_process(
            &self.container_id,
            self.tenant.as_deref(),
            &self.command,
            &self.env,
            self.working_dir.as_deref(),
            self.user.as_deref(),
        )?;
        if let Some(timeout) = self.timeout_ms {
            check::millis(&"timeoutMs", timeout, MAX_EXEC_TIMEOUT_MS)?;
        }
        if let Some(max) = self.max_output_bytes {
            check::range(&"maxOutputBytes", max, 0, MAX_OUTPUT_BYTES)?;
        }
        if let Some(stdin) = &self.stdin {
            check::max_bytes(&"stdin", stdin, MAX_INPUT_BYTES)?;
        }
        Ok(())
    }

    fn target_container(&self) -> Option<&str> {
        Some(&self.container_id)
    }

    fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
}

/// Answer to `container.exec` (the command ran and exited; a timeout is an error instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerExecResult {
    /// The command's exit code.
    pub exit_code: i32,
    /// Standard output, in `encoding`, at most `maxOutputBytes` bytes before encoding.
    pub stdout: String,
    /// Standard error, in `encoding`, at most `maxOutputBytes` bytes before encoding.
    pub stderr: String,
    /// The encoding of `stdout` and `stderr` (the request's `outputEncoding`).
    pub encoding: Encoding,
    /// Output beyond `maxOutputBytes` was dropped from stdout, stderr or both.
    pub truncated: bool,
    /// Wall time the command ran, in milliseconds.
    pub duration_ms: u64,
}

/// `container.exec.background`: start a command detached; its output is spooled by the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerExecBackground {
    /// Target container id or name.
    pub container_id: String,
    /// Tenant the container must belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Argument vector; `command[0]` is the program.
    pub command: Vec<String>,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "EnvVars::is_empty")]
    pub env: EnvVars,
    /// Absolute working directory; absent: the container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// User to run as; absent: the container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Run with extended privileges. Default `false`; refused by the `baseline` and `restricted` floors.
    #[serde(default)]
    pub privileged: bool,
}

impl CommandParams for ContainerExecBackground {
    const NAME: &'static str = "container.exec.background";
    type Output = ContainerExecBackgroundResult;

    fn validate(&self) -> Check {
        validate_process(
            &self.container_id,
            self.tenant.as_deref(),
            &self.command,
            &self.env,
            self.working_dir.as_deref(),
            self.user.as_deref(),
        )
    }

    fn target_container(&self) -> Option<&str> {
        Some(&self.container_id)
    }

    fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
}

/// Answer to `container.exec.background`: the command has started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerExecBackgroundResult {
    /// Id for `kill` and `capture`; unique on this worker.
    pub exec_id: String,
    /// The container's full id.
    pub container_id: String,
    /// Output is captured also while the worker is away and after it restarts
    /// (the container has `sh` and a writable `/tmp` for the relay); `false`:
    /// only while this worker process runs.
    #[serde(default)]
    pub restart_safe: bool,
}

/// `container.exec.background.kill`: signal a background command and its children.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerExecBackgroundKill {
    /// The `execId` from `container.exec.background`.
    pub exec_id: String,
    /// Tenant the exec's container must belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Signal name (`TERM`, `SIGKILL`, …) or number 1..=64. Default `TERM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// When given, send `KILL` if the command is still running this many ms after `signal`, 1..=600000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_ms: Option<u64>,
}

impl CommandParams for ContainerExecBackgroundKill {
    const NAME: &'static str = "container.exec.background.kill";
    type Output = ContainerExecBackgroundKillResult;

    fn validate(&self) -> Check {
        check::identifier(&"execId", &self.exec_id)?;
        if let Some(tenant) = &self.tenant {
            check::identifier(&"tenant", tenant)?;
        }
        if let Some(signal) = &self.signal {
            check::signal(&"signal", signal)?;
        }
        if let Some(grace) = self.grace_ms {
            check::millis(&"graceMs", grace, MAX_GRACE_MS)?;
        }
        Ok(())
    }

    fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
}

/// Answer to `container.exec.background.kill`: how the command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerExecBackgroundKillResult {
    /// The exec.
    pub exec_id: String,
    /// It had already exited before the signal; nothing was sent.
    pub already_exited: bool,
    /// Its exit code, when it exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that ended it, e.g. `TERM`, when it was killed by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

/// `container.exec.background.capture`: read a background command's spooled output from an offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerExecBackgroundCapture {
    /// The `execId` from `container.exec.background`.
    pub exec_id: String,
    /// Tenant the exec's container must belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// First byte to return, counted over the spool (stdout and stderr interleaved). Default 0.
    #[serde(default)]
    pub offset: u64,
    /// Most bytes to return (before encoding), 1..=4194304. Default 65536.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u32>,
    /// How chunk `data` is encoded in the result. Default `utf8`.
    #[serde(default)]
    pub encoding: Encoding,
}

impl ContainerExecBackgroundCapture {
    /// The byte budget to apply.
    pub fn max_bytes(&self) -> u32 {
        self.max_bytes.unwrap_or(DEFAULT_CAPTURE_BYTES)
    }
}

impl CommandParams for ContainerExecBackgroundCapture {
    const NAME: &'static str = "container.exec.background.capture";
    type Output = ContainerExecBackgroundCaptureResult;

    fn validate(&self) -> Check {
        check::identifier(&"execId", &self.exec_id)?;
        if let Some(tenant) = &self.tenant {
            check::identifier(&"tenant", tenant)?;
        }
        if let Some(max) = self.max_bytes {
            check::range(&"maxBytes", max, 1, MAX_OUTPUT_BYTES)?;
        }
        Ok(())
    }

    fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A run of bytes from one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputChunk {
    /// `stdout` or `stderr`.
    pub stream: OutputStream,
    /// The bytes, in the result's `encoding`.
    pub data: String,
}

/// Answer to `container.exec.background.capture`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerExecBackgroundCaptureResult {
    /// The exec.
    pub exec_id: String,
    /// Still running.
    pub running: bool,
    /// Exit code, once it has exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Spool offset of the first returned byte; larger than the requested
    /// offset when the spool no longer holds those bytes.
    pub offset: u64,
    /// Offset to ask for next (`offset` + bytes returned).
    pub next_offset: u64,
    /// Bytes between the requested offset and `offset` that are gone from the spool.
    pub lost_bytes: u64,
    /// The encoding of each chunk's `data`.
    pub encoding: Encoding,
    /// The bytes in order, split where the stream changes.
    pub chunks: Vec<OutputChunk>,
}
