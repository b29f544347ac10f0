//! `container.create`: the one normalized form of a container request.
//!
//! [`ContainerCreate`] carries every option the security floor judges
//! (privilege, namespaces, capabilities, mounts, devices, sysctls, ports), so
//! policy can decide on it in one place before an engine sees it.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::CommandParams;
use super::bounds::*;
use super::content::EnvVars;
use super::validate::{self as check, Check, Index, Key, fail};

/// Label set on every container the worker creates: `"true"`.
pub const LABEL_MANAGED: &str = "cropscode.managed";
/// Label naming the worker (its `workerId`) that created the container.
pub const LABEL_WORKER: &str = "cropscode.worker";
/// Label naming the tenant the container belongs to.
pub const LABEL_TENANT: &str = "cropscode.tenant";

/// When to pull the image of `container.create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    /// Pull only when the image is not present locally (progress is reported).
    #[default]
    Missing,
    /// Always pull before creating.
    Always,
    /// Never pull; a missing image is `not_found`.
    Never,
}

/// Resource limits of a container. Absent fields mean "engine default".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// CPU limit in CPUs (e.g. `1.5`), 0.01..=1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory limit in bytes, 6 MiB..=16 TiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Most processes in the container, 1..=4194304.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<u32>,
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortProtocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// A container port published on the host (request) or as published (result).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// Port inside the container, 1..=65535.
    pub container_port: u16,
    /// Port on the host, 1..=65535; absent: the engine picks a free one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// Protocol, default `tcp`.
    #[serde(default)]
    pub protocol: PortProtocol,
    /// Host address to bind, e.g. `127.0.0.1`; absent: the engine's default (all addresses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

/// What a mount's `source` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// A named volume managed by the engine; `source` is the volume name.
    Volume,
    /// A host path; `source` is an absolute path on the worker's machine.
    Bind,
}

/// A volume or bind mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    /// `volume` or `bind`.
    #[serde(rename = "type")]
    pub kind: MountType,
    /// Volume name (`[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}`) or absolute host path.
    pub source: String,
    /// Absolute path in the container.
    pub target: String,
    /// Mount read-only. Default `false`.
    #[serde(default)]
    pub read_only: bool,
}

/// A host device made available in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceMapping {
    /// Absolute device path on the host, e.g. `/dev/fuse`.
    pub host_path: String,
    /// Absolute path in the container; default: `hostPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_path: Option<String>,
    /// cgroup permissions, a combination of `r`, `w`, `m`; default `rwm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
}

/// `container.create`: create (not start) a container from an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerCreate {
    /// Image reference; pulled according to `pull`.
    pub image: String,
    /// Tenant the container belongs to (set as the `cropscode.tenant` label).
    pub tenant: String,
    /// Container name; absent: the engine generates one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Command (argument vector) replacing the image's `CMD`; empty: the image's default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Entrypoint (argument vector) replacing the image's `ENTRYPOINT`; absent: the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "EnvVars::is_empty")]
    pub env: EnvVars,
    /// Working directory (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels; keys under `cropscode.` are reserved for the worker.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Resource limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Published ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
    /// Volume and bind mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// User the container runs as: `user`, `uid`, `user:group` or `uid:gid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Container hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// When to pull the image. Default `missing`.
    #[serde(default)]
    pub pull: PullPolicy,
    /// Run privileged. Default `false`; refused by the `baseline` and `restricted` floors.
    #[serde(default)]
    pub privileged: bool,
    /// Capabilities to add, e.g. `NET_ADMIN`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Capabilities to drop, e.g. `ALL`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// Security options as the engines take them, e.g. `no-new-privileges`, `seccomp=unconfined`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// Network mode: `bridge`, `none`, `host`, `container:<id>` or a network name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// PID namespace mode, e.g. `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_mode: Option<String>,
    /// IPC namespace mode, e.g. `host`, `private`, `shareable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc_mode: Option<String>,
    /// UTS namespace mode, e.g. `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uts_mode: Option<String>,
    /// User namespace mode, e.g. `host`, `keep-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns_mode: Option<String>,
    /// cgroup namespace mode: `host` or `private`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroupns_mode: Option<String>,
    /// Host devices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceMapping>,
    /// Namespaced kernel parameters, e.g. `net.ipv4.ip_unprivileged_port_start`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// Mount the root filesystem read-only. Default `false`.
    #[serde(default)]
    pub read_only_rootfs: bool,
}

impl CommandParams for ContainerCreate {
    const NAME: &'static str = "container.create";
    type Output = ContainerCreateResult;

    fn validate(&self) -> Check {
        check::image_ref(&"image", &self.image)?;
        check::identifier(&"tenant", &self.tenant)?;
        if let Some(name) = &self.name {
            check::container_name(&"name", name)?;
        }
        check::argv(&"command", &self.command, true)?;
        if let Some(entrypoint) = &self.entrypoint {
            check::argv(&"entrypoint", entrypoint, true)?;
        }
        check::env(&"env", &self.env.0)?;
        if let Some(dir) = &self.working_dir {
            check::container_path(&"workingDir", dir)?;
        }
        check::labels(&"labels", &self.labels)?;
        if let Some(resources) = &self.resources {
            resources.validate()?;
        }
        check::count(&"ports", self.ports.len(), MAX_PORTS)?;
        for (i, port) in self.ports.iter().enumerate() {
            port.validate(&Index(&"ports", i))?;
        }
        check::count(&"mounts", self.mounts.len(), MAX_MOUNTS)?;
        for (i, mount) in self.mounts.iter().enumerate() {
            mount.validate(&Index(&"mounts", i))?;
        }
        if let Some(user) = &self.user {
            check::user(&"user", user)?;
        }
        if let Some(hostname) = &self.hostname {
            check::hostname(&"hostname", hostname)?;
        }
        for (field, caps) in [("capAdd", &self.cap_add), ("capDrop", &self.cap_drop)] {
            check::count(&field, caps.len(), MAX_CAPABILITIES)?;
            for (i, cap) in caps.iter().enumerate() {
                check::capability(&Index(&field, i), cap)?;
            }
        }
        check::count(&"securityOpt", self.security_opt.len(), MAX_SECURITY_OPTS)?;
        for (i, opt) in self.security_opt.iter().enumerate() {
            check::non_empty(&Index(&"securityOpt", i), opt, MAX_SECURITY_OPT_BYTES)?;
            check::text(&Index(&"securityOpt", i), opt, MAX_SECURITY_OPT_BYTES)?;
        }
        for (field, mode) in [
            ("networkMode", &self.network_mode),
            ("pidMode", &self.pid_mode),
            ("ipcMode", &self.ipc_mode),
            ("utsMode", &self.uts_mode),
            ("usernsMode", &self.userns_mode),
            ("cgroupnsMode", &self.cgroupns_mode),
        ] {
            if let Some(mode) = mode {
                check::token(&field, mode, MAX_OPTION_BYTES)?;
            }
        }
        check::count(&"devices", self.devices.len(), MAX_DEVICES)?;
        for (i, device) in self.devices.iter().enumerate() {
            device.validate(&Index(&"devices", i))?;
        }
        check::count(&"sysctls", self.sysctls.len(), MAX_SYSCTLS)?;
        for (key, value) in &self.sysctls {
            check::token(&Key(&"sysctls", key), key, MAX_OPTION_BYTES)?;
            check::text(&Key(&"sysctls", key), value, MAX_OPTION_BYTES)?;
        }
        Ok(())
    }

    fn tenant(&self) -> Option<&str> {
        Some(&self.tenant)
    }
}

impl Resources {
    fn validate(&self) -> Check {
        if let Some(cpus) = self.cpus
            && !(MIN_CPUS..=MAX_CPUS).contains(&cpus)
        {
            return Err(fail(&"resources.cpus", format_args!("must be {MIN_CPUS}..={MAX_CPUS}")));
        }
        if let Some(memory) = self.memory_bytes {
            check::range(&"resources.memoryBytes", memory, MIN_MEMORY_BYTES, MAX_MEMORY_BYTES)?;
        }
        if let Some(pids) = self.pids_limit {
            check::range(&"resources.pidsLimit", pids, 1, MAX_PIDS_LIMIT)?;
        }
        Ok(())
    }
}

impl PortMapping {
    fn validate(&self, field: &Index<'_>) -> Check {
        check::range(&Key(field, "containerPort"), self.container_port, 1, u16::MAX)?;
        if let Some(port) = self.host_port {
            check::range(&Key(field, "hostPort"), port, 1, u16::MAX)?;
        }
        if let Some(ip) = &self.host_ip {
            check::ip_addr(&Key(field, "hostIp"), ip)?;
        }
        Ok(())
    }
}

impl Mount {
    fn validate(&self, field: &Index<'_>) -> Check {
        match self.kind {
            MountType::Volume => check::container_name(&Key(field, "source"), &self.source)?,
            MountType::Bind => check::host_path(&Key(field, "source"), &self.source)?,
        }
        check::container_path(&Key(field, "target"), &self.target)
    }
}

impl DeviceMapping {
    fn validate(&self, field: &Index<'_>) -> Check {
        check::host_path(&Key(field, "hostPath"), &self.host_path)?;
        if let Some(path) = &self.container_path {
            check::container_path(&Key(field, "containerPath"), path)?;
        }
        if let Some(permissions) = &self.permissions
            && (permissions.is_empty() || permissions.len() > 3 || !permissions.bytes().all(|b| b"rwm".contains(&b)))
        {
            return Err(fail(&Key(field, "permissions"), "must be a combination of `r`, `w`, `m`"));
        }
        Ok(())
    }
}

/// Answer to `container.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerCreateResult {
    /// The engine's full container id.
    pub container_id: String,
    /// The container's name.
    pub name: String,
    /// The image reference it was created from.
    pub image: String,
    /// Whether the image was pulled for this command.
    pub pulled: bool,
    /// Warnings from the engine.
    #[serde(default)]
    pub warnings: Vec<String>,
}
