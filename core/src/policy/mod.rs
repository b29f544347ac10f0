//! The security floor: what the machine's owner allows, whatever the orchestrator asks.
//!
//! `SECURITY_FLOOR` is set only on the machine (flag, environment, config
//! file). No command carries it: the params structs have no such field, and
//! unknown fields are ignored, so a `"securityFloor": "none"` inside a command
//! is simply dropped at decode time and can change nothing.
//!
//! Data flows through one pure function per family of commands:
//!
//! ```text
//!  Command ──► Policy::enforce ──► Err(Refusal) ──► `forbidden` WireError carrying the Control
//!                   │
//!                   └─► Ok(command with Constraints applied) ──► Engine
//! ```
//!
//! - [`Policy::judge_create`] judges a [`ContainerCreate`] (the one normalized
//!   form of a container request) and returns the [`Constraints`] the engine
//!   must force (restricted: `cap-drop ALL`, `no-new-privileges`, pids and
//!   memory limits, tenant-scoped volumes) or the [`Refusal`] of the first
//!   control it breaks;
//! - [`Policy::judge_process`] judges every exec path (`container.exec`,
//!   `container.exec.background`, `terminal.open`);
//! - [`Policy::judge_setup`] and [`Policy::judge_build`] judge
//!   `container.setup` and `image.build`;
//! - [`Policy::judge_user`] judges a user the request did not name but the
//!   engine knows (the image's `USER`, a container's configured user): the
//!   engine calls it before creating or executing under `restricted`.
//!
//! The effective policy is the stricter of floor and request: a request may
//! always ask for more isolation; one that asks for less than the floor is
//! refused as a whole. Nothing is silently downgraded; the only changes made to
//! an accepted request are the restricted floor's forced additions
//! ([`Constraints::apply`]), which only ever tighten it.
//!
//! [`PolicedEngine`] wraps any [`Engine`](crate::Engine) with a policy, so a
//! shell wires the floor in with one line. The controls are the [`Control`]
//! enum; they and the levels are listed in the README's "Security floor"
//! section. A refusal reaches the orchestrator and the audit log structured:
//! [`Refusal::to_wire`] puts its control and reason in
//! [`WireError::refusal`], so nothing reads the message back.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::protocol::Command;
use crate::protocol::WireError;
use crate::protocol::commands::{
    ContainerCreate, ContainerExec, ContainerExecBackground, ContainerSetup, ImageBuild, TerminalOpen,
};

mod create;
mod engine;
pub(crate) mod floor;
mod paths;
mod process;
mod rules;

#[cfg(test)]
mod fixtures;

pub use crate::protocol::error::Control;
pub use create::{Constraints, tenant_scoped_name, tenant_volume_name};
pub use engine::PolicedEngine;
pub use floor::{ParseFloorError, SecurityFloor};

/// Why the floor refuses a request: the control it breaks and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The floor that refused.
    pub floor: SecurityFloor,
    /// The control broken.
    pub control: Control,
    /// What is wrong, for a person (names the field, never a secret).
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(floor: SecurityFloor, control: Control, message: impl Into<String>) -> Refusal {
        Refusal { floor, control, message: message.into() }
    }

    /// The `forbidden` error sent to the orchestrator, with the message
    /// ``security floor `baseline`, control `privileged`: …``, and the control
    /// and this refusal's message as its [`refusal`](WireError::refusal) (for
    /// the wire's `control` field and the audit log).
    pub fn to_wire(&self) -> WireError {
        WireError::refused(alloc::string::ToString::to_string(self), self.control, self.message.clone())
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "security floor `{}`, control `{}`: {}", self.floor, self.control, self.message)
    }
}

impl From<Refusal> for WireError {
    fn from(refusal: Refusal) -> WireError {
        refusal.to_wire()
    }
}

/// The owner's settings that refine a floor. Every field has a safe default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Host directories under which `baseline` allows bind mounts (never under
    /// `restricted`). Default: none, so every bind mount is refused. The
    /// engine follows symlinks on the host: list only directories that
    /// containers cannot write to, or set a host-path resolver
    /// ([`Policy::with_host_path_resolver`]).
    pub allowed_bind_roots: Vec<String>,
    /// Host paths that are never mounted under `baseline` or `restricted`
    /// (nor their parents), besides the engines' storage built in (e.g. the
    /// worker's `DATA_DIR` and `~/.cropscode`). `*` matches one path component.
    pub protected_paths: Vec<String>,
    /// Lowest `hostPort` that may be published (`baseline`, `restricted`). Default 1024.
    pub host_port_min: u16,
    /// Highest `hostPort` that may be published. Default 65535.
    pub host_port_max: u16,
    /// `resources.pidsLimit` forced by `restricted` when the request sets none. Default 4096.
    pub default_pids_limit: u32,
    /// `resources.memoryBytes` forced by `restricted` when the request sets none. Default 4 GiB.
    pub default_memory_bytes: u64,
}

impl PolicyConfig {
    /// The defaults listed on each field.
    pub const DEFAULT_HOST_PORT_MIN: u16 = 1024;
    /// See [`PolicyConfig::host_port_max`].
    pub const DEFAULT_HOST_PORT_MAX: u16 = u16::MAX;
    /// See [`PolicyConfig::default_pids_limit`].
    pub const DEFAULT_PIDS_LIMIT: u32 = 4096;
    /// See [`PolicyConfig::default_memory_bytes`].
    pub const DEFAULT_MEMORY_BYTES: u64 = 4 << 30;
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            allowed_bind_roots: Vec::new(),
            protected_paths: Vec::new(),
            host_port_min: Self::DEFAULT_HOST_PORT_MIN,
            host_port_max: Self::DEFAULT_HOST_PORT_MAX,
            default_pids_limit: Self::DEFAULT_PIDS_LIMIT,
            default_memory_bytes: Self::DEFAULT_MEMORY_BYTES,
        }
    }
}

/// Resolves a host path to its real path (symlinks followed), when it exists.
/// Supplied by a shell (the core does no I/O); see [`Policy::with_host_path_resolver`].
pub type HostPathResolver = fn(&str) -> Option<String>;

/// A floor with its configuration: the pure judge of every command.
#[derive(Debug, Clone)]
pub struct Policy {
    floor: SecurityFloor,
    config: PolicyConfig,
    resolver: Option<HostPathResolver>,
}

impl Policy {
    /// `floor` with the default configuration.
    pub fn new(floor: SecurityFloor) -> Policy {
        Policy::with_config(floor, PolicyConfig::default())
    }

    /// `floor` with `config`.
    pub fn with_config(floor: SecurityFloor, config: PolicyConfig) -> Policy {
        Policy { floor, config, resolver: None }
    }

    /// Also judges the real path of every bind-mount source, as `resolve`
    /// reports it (e.g. `std::fs::canonicalize`), so a symlink under an allowed
    /// root cannot point the engine at a protected path.
    pub fn with_host_path_resolver(mut self, resolve: HostPathResolver) -> Policy {
        self.resolver = Some(resolve);
        self
    }

    /// The floor.
    pub fn floor(&self) -> SecurityFloor {
        self.floor
    }

    /// The configuration.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// Judges `command` and returns it as the engine must run it (with the
    /// floor's [`Constraints`] applied), or the refusal.
    pub fn enforce(&self, command: Command) -> Result<Command, Refusal> {
        match command {
            Command::ContainerCreate(mut request) => {
                self.judge_create(&request)?.apply(&mut request);
                Ok(Command::ContainerCreate(request))
            }
            other => {
                self.judge(&other)?;
                Ok(other)
            }
        }
    }

    /// Judges any command without changing it (for a `container.create`, see
    /// [`Policy::judge_create`] for what must be forced).
    pub fn judge(&self, command: &Command) -> Result<(), Refusal> {
        match command {
            Command::ContainerCreate(request) => self.judge_create(request).map(|_| ()),
            Command::ContainerExec(ContainerExec { privileged, user, .. })
            | Command::ContainerExecBackground(ContainerExecBackground { privileged, user, .. }) => {
                self.judge_process(*privileged, user.as_deref())
            }
            Command::TerminalOpen(TerminalOpen { user, .. }) => self.judge_process(false, user.as_deref()),
            Command::ContainerSetup(request) => self.judge_setup(request),
            Command::ImageBuild(request) => self.judge_build(request),
            _ => Ok(()),
        }
    }

    /// Judges a `container.create`: the constraints to force, or the first control broken.
    pub fn judge_create(&self, request: &ContainerCreate) -> Result<Constraints, Refusal> {
        create::judge(self, request)
    }

    /// Judges an exec path: `privileged` and the `user` it runs as.
    pub fn judge_process(&self, privileged: bool, user: Option<&str>) -> Result<(), Refusal> {
        process::judge_process(self, privileged, user)
    }

    /// Judges `container.setup`.
    pub fn judge_setup(&self, request: &ContainerSetup) -> Result<(), Refusal> {
        process::judge_setup(self, request)
    }

    /// Judges `image.build`.
    pub fn judge_build(&self, request: &ImageBuild) -> Result<(), Refusal> {
        process::judge_build(self, request)
    }

    /// Judges the user a process would run as when the request names none: the
    /// image's `USER` (at `container.create`) or the container's configured user
    /// (at an exec), as the engine reports it (`""` means root). Refused under
    /// `restricted` unless it is a non-zero numeric uid.
    pub fn judge_user(&self, user: &str) -> Result<(), Refusal> {
        process::judge_effective_user(self, user)
    }

    pub(crate) fn refuse(&self, control: Control, message: impl Into<String>) -> Refusal {
        Refusal::new(self.floor, control, message)
    }
}
