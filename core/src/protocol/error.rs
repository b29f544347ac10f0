//! Error codes the orchestrator can see, and the `error` object that carries
//! them: `{code, message}`, plus `control` when the worker's security floor
//! refused the command.
//!
//! ```text
//!  policy::Refusal ──to_wire──► WireError { code: forbidden, message, refusal: Some(ControlRefusal) }
//!                                   │ on the wire: {"code","message","control"}
//!                                   └─► session AuditRecord ──► audit log `control`, `reason`
//! ```

use alloc::string::String;
use core::fmt;
use serde::{Deserialize, Serialize};

/// Every error code that can appear on the wire (`error.code`).
///
/// Serialized in `snake_case`. New codes may be added in later protocol
/// versions: orchestrators should treat an unknown code like `internal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not valid JSON, misses a required field, has a field of the wrong type or out of its bounds.
    InvalidRequest,
    /// The frame's `type` is not a message or command this worker knows.
    UnknownCommand,
    /// A text frame exceeded `maxTextFrameBytes` (or a binary frame `maxBinaryFrameBytes`).
    FrameTooLarge,
    /// The target (container, image, session) does not exist or is not managed by this worker.
    NotFound,
    /// The target is in a state that does not allow the command (name in use, already running, …).
    Conflict,
    /// The worker's local policy (security floor, ownership) refuses the command.
    Forbidden,
    /// No container engine is reachable, or the engine failed in a way that may pass.
    EngineUnavailable,
    /// The command did not finish within its time limit.
    Timeout,
    /// The worker is at one of its documented limits (e.g. concurrent commands); retry later.
    Busy,
    /// A bug or an unexpected failure inside the worker.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::EngineUnavailable => "engine_unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Busy => "busy",
            ErrorCode::Internal => "internal",
        }
    }

    /// Whether the same command may succeed if the orchestrator sends it again later.
    pub const fn is_retryable(self) -> bool {
        matches!(self, ErrorCode::EngineUnavailable | ErrorCode::Timeout | ErrorCode::Busy)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A control of the worker's security floor: what a `forbidden` refusal
/// names, in the error's `control` field, its message and the audit log.
///
/// The names ([`Control::as_str`]) are stable: they are on the wire, in the
/// README's "Security floor" table and in audit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Control {
    /// `privileged` containers, privileged execs, `RUN --security=insecure` in builds.
    Privileged,
    /// `networkMode` `host` (or a namespace path, or host-loopback options); builds too.
    HostNetwork,
    /// `pidMode` `host`.
    HostPid,
    /// `ipcMode` `host`.
    HostIpc,
    /// `utsMode` `host`.
    HostUts,
    /// `usernsMode` `host`.
    HostUsers,
    /// `cgroupnsMode` `host`.
    HostCgroupns,
    /// Joining another container's namespaces (`container:<id>` modes).
    ContainerNamespaces,
    /// `capAdd` beyond the allowed set.
    Capabilities,
    /// Bind mounts of host paths.
    HostPath,
    /// The Docker and Podman sockets (and the directories holding them): never mounted, at any level.
    EngineSocket,
    /// Named volumes outside the tenant's scope.
    Volumes,
    /// Host devices.
    Devices,
    /// `seccomp=unconfined` or a custom seccomp profile.
    Seccomp,
    /// `apparmor=unconfined`.
    Apparmor,
    /// `label=disable` and SELinux types, users and roles other than the container ones.
    SeLinux,
    /// Unmasked `/proc` and system paths (`systempaths=unconfined`, `unmask=…`, `proc-opts`, writable cgroups).
    ProcMount,
    /// A `securityOpt` the worker does not know and so cannot judge.
    SecurityOpt,
    /// Sysctls outside the safe set.
    Sysctls,
    /// Published host ports outside the allowed range.
    HostPorts,
    /// Running as root (restricted): a root or unverifiable user, or an image whose user is root.
    RunAsRoot,
    /// `no-new-privileges=false`, setuid/setgid files (restricted).
    AllowPrivilegeEscalation,
}

impl Control {
    /// Every control, in the README's order.
    pub const ALL: [Control; 22] = [
        Control::Privileged,
        Control::HostNetwork,
        Control::HostPid,
        Control::HostIpc,
        Control::HostUts,
        Control::HostUsers,
        Control::HostCgroupns,
        Control::ContainerNamespaces,
        Control::Capabilities,
        Control::HostPath,
        Control::EngineSocket,
        Control::Volumes,
        Control::Devices,
        Control::Seccomp,
        Control::Apparmor,
        Control::SeLinux,
        Control::ProcMount,
        Control::SecurityOpt,
        Control::Sysctls,
        Control::HostPorts,
        Control::RunAsRoot,
        Control::AllowPrivilegeEscalation,
    ];

    /// The control's name: `privileged`, `hostNetwork`, `hostPID`, …
    pub const fn as_str(self) -> &'static str {
        match self {
            Control::Privileged => "privileged",
            Control::HostNetwork => "hostNetwork",
            Control::HostPid => "hostPID",
            Control::HostIpc => "hostIPC",
            Control::HostUts => "hostUTS",
            Control::HostUsers => "hostUsers",
            Control::HostCgroupns => "hostCgroupns",
            Control::ContainerNamespaces => "containerNamespaces",
            Control::Capabilities => "capabilities",
            Control::HostPath => "hostPath",
            Control::EngineSocket => "engineSocket",
            Control::Volumes => "volumes",
            Control::Devices => "devices",
            Control::Seccomp => "seccomp",
            Control::Apparmor => "apparmor",
            Control::SeLinux => "seLinux",
            Control::ProcMount => "procMount",
            Control::SecurityOpt => "securityOpt",
            Control::Sysctls => "sysctls",
            Control::HostPorts => "hostPorts",
            Control::RunAsRoot => "runAsRoot",
            Control::AllowPrivilegeEscalation => "allowPrivilegeEscalation",
        }
    }

    /// The control named `name` (exactly as [`Control::as_str`] spells it).
    pub fn parse(name: &str) -> Option<Control> {
        Control::ALL.into_iter().find(|control| control.as_str() == name)
    }
}

impl fmt::Display for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The structured part of a security-floor refusal, carried by its
/// `forbidden` [`WireError`] so that no reader has to parse the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlRefusal {
    /// The control the request breaks (on the wire as the error's `control`).
    pub control: Control,
    /// What is wrong, for a person: the floor's own words (names the field,
    /// never a secret or engine output), as the audit log records them. Off
    /// the wire: an error decoded from JSON has its whole `message` here.
    pub reason: String,
}

/// The `error` object of a failed result or an `error` frame.
///
/// On the wire: `{"code": …, "message": …}`, and `"control": …` when
/// [`refusal`](WireError::refusal) is set. An unknown `control` decodes as no refusal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "WireErrorRepr")]
pub struct WireError {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation. Never contains a secret.
    pub message: String,
    /// Set when the security floor refused the command (code `forbidden`).
    pub refusal: Option<ControlRefusal>,
}

/// The error object as it is decoded.
#[derive(Deserialize)]
struct WireErrorRepr {
    code: ErrorCode,
    message: String,
    #[serde(default)]
    control: Option<String>,
}

impl From<WireErrorRepr> for WireError {
    fn from(repr: WireErrorRepr) -> WireError {
        let control = repr.control.as_deref().and_then(Control::parse);
        let refusal = control.map(|control| ControlRefusal { control, reason: repr.message.clone() });
        WireError { code: repr.code, message: repr.message, refusal }
    }
}

impl Serialize for WireError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut object = serializer.serialize_struct("WireError", 2 + usize::from(self.refusal.is_some()))?;
        object.serialize_field("code", &self.code)?;
        object.serialize_field("message", &self.message)?;
        if let Some(refusal) = &self.refusal {
            object.serialize_field("control", refusal.control.as_str())?;
        }
        object.end()
    }
}

impl WireError {
    /// An error with the given code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError { code, message: message.into(), refusal: None }
    }

    /// A `forbidden` error of the security floor: `message` for the wire, and
    /// the control and reason for the audit log.
    pub fn refused(message: impl Into<String>, control: Control, reason: impl Into<String>) -> Self {
        let refusal = Some(ControlRefusal { control, reason: reason.into() });
        WireError { code: ErrorCode::Forbidden, message: message.into(), refusal }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for WireError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_documented() {
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::UnknownCommand,
            ErrorCode::FrameTooLarge,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::Forbidden,
            ErrorCode::EngineUnavailable,
            ErrorCode::Timeout,
            ErrorCode::Busy,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, alloc::format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn controls_parse_back_from_their_names() {
        for control in Control::ALL {
            assert_eq!(Control::parse(control.as_str()), Some(control));
        }
        assert_eq!(Control::parse("HostNetwork"), None);
    }

    #[test]
    fn the_control_of_a_refusal_is_on_the_wire_and_nothing_else_changes() {
        let plain = WireError::new(ErrorCode::NotFound, "no such container");
        let json = serde_json::to_string(&plain).unwrap();
        assert_eq!(json, r#"{"code":"not_found","message":"no such container"}"#);
        assert_eq!(serde_json::from_str::<WireError>(&json).unwrap(), plain);

        let refused =
            WireError::refused("security floor `baseline`, control `privileged`: no", Control::Privileged, "no");
        let json = serde_json::to_string(&refused).unwrap();
        assert_eq!(
            json,
            r#"{"code":"forbidden","message":"security floor `baseline`, control `privileged`: no","control":"privileged"}"#
        );
        let back: WireError = serde_json::from_str(&json).unwrap();
        assert_eq!(back.refusal.map(|r| r.control), Some(Control::Privileged));
        let unknown = r#"{"code":"forbidden","message":"m","control":"somethingNew"}"#;
        assert_eq!(serde_json::from_str::<WireError>(unknown).unwrap().refusal, None);
    }
}
