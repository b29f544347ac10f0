//! The non-command messages: registration, its acknowledgement, heartbeats,
//! command results, progress and connection-level errors.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Limits, WireError};

/// How the worker was provisioned (`mode` in `worker.register`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Bring-your-own-machine: a person's machine, token from `cropscode login`.
    #[default]
    Byom,
    /// Managed fleet deployment configured by `/etc/cropscode/agent.yaml`.
    Fleet,
}

impl Mode {
    /// The mode as it appears on the wire and in configuration.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Byom => "byom",
            Mode::Fleet => "fleet",
        }
    }
}

/// `worker.register`: the first frame on every connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Register {
    /// Version of the wire contract the worker speaks.
    pub protocol_version: u32,
    /// Worker name (flag, env `WORKER_NAME`, config, or the hostname).
    pub name: String,
    /// System hostname.
    pub hostname: String,
    /// `linux`, `darwin` or `windows`.
    pub platform: String,
    /// CPU architecture: `x86_64`, `aarch64`, `arm`, …
    pub arch: String,
    /// Number of logical CPUs.
    pub cpu_count: u32,
    /// Total RAM in bytes.
    pub memory_total: u64,
    /// Detected container engines, e.g. `["podman", "docker"]`.
    pub container_engines: Vec<String>,
    /// Version of the agent binary.
    pub agent_version: String,
    /// Provisioning mode.
    pub mode: Mode,
    /// The id the orchestrator gave this worker before (from `worker.json`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// The bounds the worker applies to incoming frames.
    pub limits: Limits,
}

/// `worker.registered`: the orchestrator accepts the registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    /// Stable id of this worker at the orchestrator; stored in `worker.json`.
    pub worker_id: String,
    /// The gateway the orchestrator wants this worker to probe, if any. The
    /// owner's own `GATEWAY_URL` wins over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Gateway>,
}

/// `gateway` in `worker.registered`: an endpoint the machine's containers
/// depend on, which the worker probes and reports on in its heartbeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateway {
    /// `http://…`, `https://…` or `tcp://host:port`; checked by the shell
    /// with the same rules as the owner's `GATEWAY_URL`.
    pub url: String,
}

/// The documented values of `gatewayStatus` in `worker.heartbeat`. The
/// heartbeat carries the status as a string, so a peer that predates a
/// status added later still decodes the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GatewayStatus {
    /// No probe has finished since the gateway was set.
    Unknown,
    /// HTTP answered 2xx or 3xx in time; TCP connected in time.
    Ok,
    /// Answered, but slowly, with a 5xx, another 4xx, or not as HTTP.
    Degraded,
    /// Refused, no address, unroutable, reset or timed out.
    Unreachable,
    /// HTTP answered 401, 403 or 407.
    AuthFailed,
    /// The TLS handshake failed: untrusted, expired or misnamed certificate, alert.
    TlsFailed,
}

impl GatewayStatus {
    /// Every status, in the order the protocol document lists them.
    pub const ALL: [GatewayStatus; 6] = [
        GatewayStatus::Ok,
        GatewayStatus::Degraded,
        GatewayStatus::Unreachable,
        GatewayStatus::AuthFailed,
        GatewayStatus::TlsFailed,
        GatewayStatus::Unknown,
    ];

    /// The status as `gatewayStatus` carries it.
    pub const fn as_str(self) -> &'static str {
        match self {
            GatewayStatus::Unknown => "unknown",
            GatewayStatus::Ok => "ok",
            GatewayStatus::Degraded => "degraded",
            GatewayStatus::Unreachable => "unreachable",
            GatewayStatus::AuthFailed => "auth_failed",
            GatewayStatus::TlsFailed => "tls_failed",
        }
    }
}

impl core::fmt::Display for GatewayStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `worker.rejected`: the orchestrator refuses the registration (bad token,
/// unsupported protocol version, …). The worker treats it like an auth failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// Why, for the worker's log.
    pub error: WireError,
}

/// `worker.heartbeat`: liveness plus the machine's current figures.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    /// CPU usage over the last interval, 0–100.
    pub cpu_usage: f64,
    /// Free (available) RAM in bytes.
    pub memory_free: u64,
    /// Size of the disk holding the data directory, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_total: Option<u64>,
    /// Free space on that disk, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_free: Option<u64>,
    /// Running containers managed by this worker.
    pub containers_running: u32,
    /// Gateway connectivity status, when the worker has a gateway: one of
    /// [`GatewayStatus`] (a string, so that statuses can be added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_status: Option<String>,
    /// What the last probe saw (`HTTP 200 in 12 ms`, `connect refused`);
    /// short, and never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_status_detail: Option<String>,
}

/// `result`: the one answer to a command id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    /// The command id this answers.
    pub id: String,
    /// `true` with `result`, `false` with `error`.
    pub ok: bool,
    /// The command's result payload when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The failure when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
}

impl CommandResult {
    /// A result frame from an outcome.
    pub fn from_outcome(id: String, outcome: Result<Value, WireError>) -> Self {
        match outcome {
            Ok(value) => CommandResult { id, ok: true, result: Some(value), error: None },
            Err(error) => CommandResult { id, ok: false, result: None, error: Some(error) },
        }
    }

    /// The outcome this frame carries.
    pub fn outcome(&self) -> Result<&Value, &WireError> {
        match (&self.error, &self.result) {
            (Some(e), _) => Err(e),
            (None, Some(v)) => Ok(v),
            (None, None) => Ok(&Value::Null),
        }
    }
}

/// `progress`: an interim report for a long command (image pull, build).
/// Zero or more precede the command's `result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The command id this reports on.
    pub id: String,
    /// Command-specific progress payload.
    pub progress: Value,
}

/// `error`: a connection-level error about a frame that had no usable `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// What went wrong.
    pub error: WireError,
}

/// Every text frame the worker sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Outgoing {
    /// `worker.register`
    #[serde(rename = "worker.register")]
    Register(Register),
    /// `worker.heartbeat`
    #[serde(rename = "worker.heartbeat")]
    Heartbeat(Heartbeat),
    /// `result`
    #[serde(rename = "result")]
    Result(CommandResult),
    /// `progress`
    #[serde(rename = "progress")]
    Progress(Progress),
    /// `error`
    #[serde(rename = "error")]
    Error(ErrorFrame),
}
