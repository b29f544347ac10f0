//! `container.create` under the floor: every control of the request, in the
//! README's order, then what `restricted` forces.
//!
//! Checks run cheapest and most fundamental first (privilege, namespaces,
//! capabilities, mounts, devices, security options, sysctls, ports, user);
//! the first control broken refuses the whole request.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::paths::HostPath;
use super::rules::{judge_namespace, judge_option_user, split_option};
use super::{Control, Policy, Refusal};
use crate::protocol::commands::{ContainerCreate, MountType, Resources};

/// Capabilities `baseline` lets a request add: the Pod Security Standards
/// Baseline set (the engines' defaults without `NET_RAW`).
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Capabilities `restricted` lets a request add (after its forced `cap-drop ALL`).
const RESTRICTED_CAPABILITIES: &[&str] = &["NET_BIND_SERVICE"];

/// Namespaced sysctls allowed under `baseline` (the Pod Security Standards safe set).
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// SELinux types a container may ask for (Pod Security Standards Baseline).
const SELINUX_TYPES: &[&str] = &["container_t", "container_init_t", "container_kvm_t", "container_engine_t"];

/// Longest engine volume name the worker produces (a file name on the engine's disk).
const MAX_VOLUME_NAME_BYTES: usize = 255;

/// What an engine must force on a `container.create` the floor accepted.
/// Everything here only tightens the request; [`Constraints::apply`] applies it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Constraints {
    /// Drop every capability (`capDrop: ["ALL"]`); only `NET_BIND_SERVICE` may be added back.
    pub drop_all_capabilities: bool,
    /// `securityOpt: ["no-new-privileges"]`.
    pub no_new_privileges: bool,
    /// The request names no user: the image's `USER` must be a non-root numeric
    /// uid, which the engine checks with [`Policy::judge_user`] before creating.
    pub non_root_image_user: bool,
    /// `resources.pidsLimit` when the request sets none.
    pub default_pids_limit: Option<u32>,
    /// `resources.memoryBytes` when the request sets none.
    pub default_memory_bytes: Option<u64>,
    /// Named volumes are the tenant's: `source` becomes [`tenant_volume_name`].
    pub tenant_volumes: bool,
}

impl Constraints {
    /// Applies the constraints to `request` (idempotent).
    pub fn apply(&self, request: &mut ContainerCreate) {
        if self.drop_all_capabilities && !request.cap_drop.iter().any(|c| normalize_capability(c) == "ALL") {
            request.cap_drop.push(String::from("ALL"));
        }
        if self.no_new_privileges
            && !request
                .security_opt
                .iter()
                .any(|o| matches!(split_option(o), ("no-new-privileges", None | Some("true"))))
        {
            request.security_opt.push(String::from("no-new-privileges"));
        }
        if self.default_pids_limit.is_some() || self.default_memory_bytes.is_some() {
            let resources = request.resources.get_or_insert_with(Resources::default);
            if resources.pids_limit.is_none() {
                resources.pids_limit = self.default_pids_limit;
            }
            if resources.memory_bytes.is_none() {
                resources.memory_bytes = self.default_memory_bytes;
            }
        }
        if self.tenant_volumes {
            let prefix = tenant_volume_prefix(&request.tenant);
            for mount in request.mounts.iter_mut().filter(|m| m.kind == MountType::Volume) {
                if !mount.source.starts_with(&prefix) {
                    mount.source = format!("{prefix}{}", mount.source);
                }
            }
        }
    }
}

/// The engine's name of the volume `source` of `tenant` under `restricted`: the same
/// tenant-scoped form as container names ([`tenant_scoped_name`]).
pub fn tenant_volume_name(tenant: &str, source: &str) -> String {
    tenant_scoped_name(tenant, source)
}

/// The engine-side name of `name` owned by `tenant` (containers, and volumes under
/// `restricted`): `cs-<escaped tenant>.<name>`. In the tenant, `_` `.` `:` `@` become
/// `_u` `_d` `_c` `_a`, which leaves the tenant part free of `.` and inside the engines'
/// name alphabet, so no tenant can name another tenant's object. The one definition both
/// the policy and the engine use.
pub fn tenant_scoped_name(tenant: &str, name: &str) -> String {
    let mut out = tenant_volume_prefix(tenant);
    out.push_str(name);
    out
}

fn tenant_volume_prefix(tenant: &str) -> String {
    let mut out = String::with_capacity(3 + tenant.len() * 2 + 1);
    out.push_str("cs-");
    for c in tenant.chars() {
        match c {
            '_' => out.push_str("_u"),
            '.' => out.push_str("_d"),
            ':' => out.push_str("_c"),
            '@' => out.push_str("_a"),
            c => out.push(c),
        }
    }
    out.push('.');
    out
}

/// `CAP_NET_ADMIN`, `net_admin` → `NET_ADMIN`.
pub(crate) fn normalize_capability(cap: &str) -> String {
    let upper = cap.to_ascii_uppercase();
    match upper.strip_prefix("CAP_") {
        Some(rest) => rest.to_string(),
        None => upper,
    }
}

pub(super) fn judge(policy: &Policy, request: &ContainerCreate) -> Result<Constraints, Refusal> {
    judge_mounts(policy, request)?;
    let floor = policy.floor;
    if !floor.at_least_baseline() {
        return Ok(Constraints::default());
    }
    if request.privileged {
        return Err(policy.refuse(Control::Privileged, "privileged containers are not allowed (`privileged`)"));
    }
    judge_namespaces(policy, request)?;
    judge_capabilities(policy, request)?;
    if let Some(device) = request.devices.first() {
        return Err(policy.refuse(
            Control::Devices,
            format!("host devices are not allowed (`devices[0].hostPath` `{}`)", device.host_path),
        ));
    }
    for (i, option) in request.security_opt.iter().enumerate() {
        judge_security_opt(policy, i, option)?;
    }
    for key in request.sysctls.keys() {
        let normalized = key.replace('/', ".");
        if !SAFE_SYSCTLS.contains(&normalized.as_str()) {
            return Err(policy.refuse(
                Control::Sysctls,
                format!("sysctl `{key}` is not in the safe set (`sysctls`); allowed: {}", SAFE_SYSCTLS.join(", ")),
            ));
        }
    }
    let (min, max) = (policy.config.host_port_min, policy.config.host_port_max);
    for (i, port) in request.ports.iter().enumerate() {
        if let Some(host_port) = port.host_port
            && !(min..=max).contains(&host_port)
        {
            return Err(policy.refuse(
                Control::HostPorts,
                format!("host port {host_port} is outside the allowed range {min}-{max} (`ports[{i}].hostPort`)"),
            ));
        }
    }
    if !floor.restricted() {
        return Ok(Constraints::default());
    }
    // Restricted.
    if let Some(user) = &request.user {
        judge_option_user(policy, "user", user)?;
    }
    let restricted = Constraints {
        drop_all_capabilities: true,
        no_new_privileges: true,
        non_root_image_user: request.user.is_none(),
        default_pids_limit: Some(policy.config.default_pids_limit),
        default_memory_bytes: Some(policy.config.default_memory_bytes),
        tenant_volumes: true,
    };
    let prefix_len = tenant_volume_prefix(&request.tenant).len();
    for (i, mount) in request.mounts.iter().enumerate() {
        if mount.kind == MountType::Volume && prefix_len + mount.source.len() > MAX_VOLUME_NAME_BYTES {
            return Err(policy.refuse(
                Control::Volumes,
                format!(
                    "the tenant-scoped name of volume `{}` would exceed {MAX_VOLUME_NAME_BYTES} bytes (`mounts[{i}].source`)",
                    mount.source
                ),
            ));
        }
    }
    Ok(restricted)
}

/// Bind mounts. The engine sockets are refused at every floor, even read-only.
fn judge_mounts(policy: &Policy, request: &ContainerCreate) -> Result<(), Refusal> {
    for (i, mount) in request.mounts.iter().enumerate() {
        if mount.kind != MountType::Bind {
            continue;
        }
        let field = format!("mounts[{i}].source");
        let mut candidates: Vec<HostPath> = alloc::vec![HostPath::parse(&mount.source)];
        if let Some(real) = policy.resolver.and_then(|resolve| resolve(&mount.source)) {
            candidates.push(HostPath::parse(&real));
        }
        for path in &candidates {
            if path.exposes_engine_socket() {
                return Err(policy.refuse(
                    Control::EngineSocket,
                    format!(
                        "`{}` is or holds a container engine socket, never mountable, even read-only (`{field}`)",
                        path.display()
                    ),
                ));
            }
        }
        if !policy.floor.at_least_baseline() {
            continue;
        }
        if policy.floor.restricted() {
            return Err(policy.refuse(
                Control::HostPath,
                format!("bind mounts are not allowed under `restricted`; use a named volume (`{field}`)"),
            ));
        }
        for path in &candidates {
            if let Some(protected) = path.exposes_protected(&policy.config.protected_paths) {
                return Err(policy.refuse(
                    Control::HostPath,
                    format!("`{}` overlaps the protected path `{protected}` (`{field}`)", path.display()),
                ));
            }
            let roots = &policy.config.allowed_bind_roots;
            if !roots.iter().any(|root| path.is_within(&HostPath::parse(root))) {
                let allowed = if roots.is_empty() { String::from("none configured") } else { roots.join(", ") };
                return Err(policy.refuse(
                    Control::HostPath,
                    format!(
                        "bind mount of `{}` is outside the allowed roots ({allowed}); use a named volume (`{field}`)",
                        path.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A namespace mode: the engine's default, a private one, or something shared with the host.
fn judge_namespaces(policy: &Policy, request: &ContainerCreate) -> Result<(), Refusal> {
    let namespaces: [(&str, &Option<String>, Control, &[&str]); 6] = [
        (
            "networkMode",
            &request.network_mode,
            Control::HostNetwork,
            &["bridge", "default", "none", "private", "slirp4netns", "pasta"],
        ),
        ("pidMode", &request.pid_mode, Control::HostPid, &["private"]),
        ("ipcMode", &request.ipc_mode, Control::HostIpc, &["private", "shareable", "none"]),
        ("utsMode", &request.uts_mode, Control::HostUts, &["private"]),
        ("usernsMode", &request.userns_mode, Control::HostUsers, &["private", "auto", "keep-id", "nomap"]),
        ("cgroupnsMode", &request.cgroupns_mode, Control::HostCgroupns, &["private"]),
    ];
    for (field, mode, host_control, private) in namespaces {
        if let Some(mode) = mode {
            judge_namespace(policy, field, mode, host_control, private)?;
        }
    }
    Ok(())
}

fn judge_capabilities(policy: &Policy, request: &ContainerCreate) -> Result<(), Refusal> {
    let allowed = if policy.floor.restricted() { RESTRICTED_CAPABILITIES } else { BASELINE_CAPABILITIES };
    for (i, cap) in request.cap_add.iter().enumerate() {
        let name = normalize_capability(cap);
        if !allowed.contains(&name.as_str()) {
            return Err(policy.refuse(
                Control::Capabilities,
                format!("adding capability `{name}` is not allowed (`capAdd[{i}]`); allowed: {}", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

/// One `securityOpt` entry: `key`, `key=value` or the legacy `key:value`.
fn judge_security_opt(policy: &Policy, i: usize, option: &str) -> Result<(), Refusal> {
    let field = format!("securityOpt[{i}]");
    let refuse = |control: Control, why: &str| Err(policy.refuse(control, format!("{why} (`{field}` `{option}`)")));
    match split_option(option) {
        ("no-new-privileges", None) => Ok(()),
        ("no-new-privileges", Some(value)) => match parse_bool(value) {
            Some(true) => Ok(()),
            Some(false) if policy.floor.restricted() => {
                refuse(Control::AllowPrivilegeEscalation, "privilege escalation must stay disabled")
            }
            Some(false) => Ok(()),
            None => refuse(Control::SecurityOpt, "`no-new-privileges` takes true or false"),
        },
        ("seccomp", Some("builtin" | "default" | "runtime/default")) => Ok(()),
        ("seccomp", Some("unconfined")) => refuse(Control::Seccomp, "seccomp must not be unconfined"),
        ("seccomp", _) => {
            refuse(Control::Seccomp, "custom seccomp profiles are not allowed (the runtime default applies)")
        }
        ("apparmor", Some("unconfined")) => refuse(Control::Apparmor, "AppArmor must not be unconfined"),
        ("apparmor", Some(profile)) if !profile.is_empty() => Ok(()),
        ("apparmor", _) => refuse(Control::Apparmor, "an AppArmor profile name is required"),
        ("label", Some(value)) => judge_selinux(value).map_or(Ok(()), |why| refuse(Control::SeLinux, why)),
        ("label", None) => refuse(Control::SeLinux, "an SELinux option is required"),
        ("mask", Some(_)) => Ok(()),
        ("systempaths" | "unmask" | "proc-opts", _) => {
            refuse(Control::ProcMount, "/proc and system paths must stay masked")
        }
        ("writable-cgroups", value) if value.and_then(parse_bool) != Some(false) => {
            refuse(Control::ProcMount, "cgroups must stay read-only")
        }
        ("writable-cgroups", _) => Ok(()),
        _ => refuse(Control::SecurityOpt, "unknown security option (the worker cannot judge it)"),
    }
}

/// Why an SELinux `label` option is refused, if it is.
fn judge_selinux(value: &str) -> Option<&'static str> {
    match value.split_once(':') {
        _ if value == "disable" => Some("SELinux must not be disabled"),
        Some(("level", level)) if !level.is_empty() => None,
        Some(("type" | "filetype", kind)) if SELINUX_TYPES.contains(&kind) => None,
        Some(("type" | "filetype", _)) => Some("only the container SELinux types are allowed"),
        Some(("user" | "role", _)) => Some("setting the SELinux user or role is not allowed"),
        _ => Some("unknown SELinux option"),
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}
