//! `terminal.open`, `terminal.input`, `terminal.resize`, `terminal.close`,
//! `display.open`, `display.close`.
//!
//! Opening a terminal or a display returns a `sessionId` for the control
//! commands and a `channel` for the binary frames that carry its bytes (see
//! [`crate::protocol::binary`]). `terminal.open` with a known `sessionId`
//! re-attaches to a session that outlived a disconnect, resuming its output
//! at `offset`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};

use super::CommandParams;
use super::bounds::*;
use super::container::validate_target;
use super::content::{EnvVars, Length};
use super::validate::{self as check, Check};
use crate::protocol::binary::Channel;

fn default_shell() -> Vec<String> {
    alloc::vec![String::from(DEFAULT_SHELL)]
}

fn default_cols() -> u16 {
    DEFAULT_COLS
}

fn default_rows() -> u16 {
    DEFAULT_ROWS
}

fn default_display_port() -> u16 {
    DEFAULT_DISPLAY_PORT
}

fn validate_size(cols: u16, rows: u16) -> Check {
    check::range(&"cols", cols, MIN_TERMINAL_SIZE, MAX_TERMINAL_SIZE)?;
    check::range(&"rows", rows, MIN_TERMINAL_SIZE, MAX_TERMINAL_SIZE)
}

/// `terminal.open`: start an interactive shell (an exec with a TTY), or re-attach to one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminalOpen {
    /// Target container id or name.
    pub container_id: String,
    /// Tenant the container must belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Argument vector of the shell. Default `["/bin/sh"]`.
    #[serde(default = "default_shell")]
    pub command: Vec<String>,
    /// Width in columns, 1..=1000. Default 80.
    #[serde(default = "default_cols")]
    pub cols: u16,
    /// Height in rows, 1..=1000. Default 24.
    #[serde(default = "default_rows")]
    pub rows: u16,
    /// Extra environment variables (e.g. `TERM`).
    #[serde(default, skip_serializing_if = "EnvVars::is_empty")]
    pub env: EnvVars,
    /// Absolute working directory; absent: the container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// User to run as; absent: the container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Re-attach to this existing session instead of starting a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// With `sessionId`: the output offset received so far; output resumes there. Default 0.
    #[serde(default)]
    pub offset: u64,
}

impl CommandParams for TerminalOpen {
    const NAME: &'static str = "terminal.open";
    type Output = TerminalOpenResult;

    fn validate(&self) -> Check {
        validate_target(&self.container_id, self.tenant.as_deref())?;
        check::argv(&"command", &self.command, false)?;
        validate_size(self.cols, self.rows)?;
        check::env(&"env", &self.env.0)?;
        if let Some(dir) = &self.working_dir {
            check::container_path(&"workingDir", dir)?;
        }
        if let Some(user) = &self.user {
            check::user(&"user", user)?;
        }
        if let Some(session) = &self.session_id {
            check::identifier(&"sessionId", session)?;
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

/// Answer to `terminal.open`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminalOpenResult {
    /// Id for `terminal.input`, `.resize`, `.close` and re-attaching.
    pub session_id: String,
    /// Binary frame channel of the session's bytes (both directions).
    pub channel: Channel,
    /// An existing session was re-attached.
    pub resumed: bool,
    /// Output offset of the next byte the worker sends on `channel`.
    pub offset: u64,
    /// Output bytes after the requested offset that the replay buffer no longer holds.
    pub lost_bytes: u64,
}

/// `terminal.input`: keystrokes as text. Binary frames on the session's channel are the bulk path.
///
/// `Debug` prints the length of `data`, never the keystrokes (they may be passwords).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminalInput {
    /// The session.
    pub session_id: String,
    /// UTF-8 text to write to the terminal, 1..=65536 bytes.
    pub data: String,
}

impl fmt::Debug for TerminalInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TerminalInput")
            .field("session_id", &self.session_id)
            .field("data", &Length(self.data.len()))
            .finish()
    }
}

impl CommandParams for TerminalInput {
    const NAME: &'static str = "terminal.input";
    type Output = TerminalInputResult;

    fn validate(&self) -> Check {
        check::identifier(&"sessionId", &self.session_id)?;
        check::non_empty(&"data", &self.data, MAX_INPUT_BYTES)
    }
}

/// Answer to `terminal.input`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminalInputResult {
    /// The session.
    pub session_id: String,
    /// Bytes written to the terminal.
    pub accepted_bytes: u32,
}

/// `terminal.resize`: change a terminal's size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminalResize {
    /// The session.
    pub session_id: String,
    /// Width in columns, 1..=1000.
    pub cols: u16,
    /// Height in rows, 1..=1000.
    pub rows: u16,
}

impl CommandParams for TerminalResize {
    const NAME: &'static str = "terminal.resize";
    type Output = TerminalResizeResult;

    fn validate(&self) -> Check {
        check::identifier(&"sessionId", &self.session_id)?;
        validate_size(self.cols, self.rows)
    }
}

/// Answer to `terminal.resize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminalResizeResult {
    /// The session.
    pub session_id: String,
    /// Width now.
    pub cols: u16,
    /// Height now.
    pub rows: u16,
}

/// `terminal.close`: end a terminal session (its process is ended in the container).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminalClose {
    /// The session.
    pub session_id: String,
}

impl CommandParams for TerminalClose {
    const NAME: &'static str = "terminal.close";
    type Output = TerminalCloseResult;

    fn validate(&self) -> Check {
        check::identifier(&"sessionId", &self.session_id)
    }
}

/// Answer to `terminal.close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminalCloseResult {
    /// The session.
    pub session_id: String,
    /// The shell's exit code, when it had exited or exited on close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// `display.open`: relay a TCP stream to the container's VNC server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisplayOpen {
    /// Target container id or name.
    pub container_id: String,
    /// Tenant the container must belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// TCP port of the VNC server in the container, 1..=65535. Default 5900.
    #[serde(default = "default_display_port")]
    pub port: u16,
}

impl CommandParams for DisplayOpen {
    const NAME: &'static str = "display.open";
    type Output = DisplayOpenResult;

    fn validate(&self) -> Check {
        validate_target(&self.container_id, self.tenant.as_deref())?;
        check::range(&"port", self.port, 1, u16::MAX)
    }

    fn target_container(&self) -> Option<&str> {
        Some(&self.container_id)
    }

    fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
}

/// Answer to `display.open`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisplayOpenResult {
    /// Id for `display.close`.
    pub session_id: String,
    /// Binary frame channel of the relayed bytes (both directions).
    pub channel: Channel,
}

/// `display.close`: end a display relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisplayClose {
    /// The session.
    pub session_id: String,
}

impl CommandParams for DisplayClose {
    const NAME: &'static str = "display.close";
    type Output = DisplayCloseResult;

    fn validate(&self) -> Check {
        check::identifier(&"sessionId", &self.session_id)
    }
}

/// Answer to `display.close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisplayCloseResult {
    /// The session.
    pub session_id: String,
}
