//! The machine's figures: what `worker.register` says once and what every
//! `worker.heartbeat` reports.
//!
//! [`system_info`] is read once at startup to fill the registration.
//! [`SysProbe`] keeps one sysinfo `System` and one `Disks` list for the life of
//! the worker; each heartbeat refreshes only the global CPU usage, the RAM
//! figures and the one disk that holds the data directory — a few hundred
//! microseconds. Nothing on the heartbeat path lists processes or re-reads
//! the mount table (`refresh_all` walks every process: ~44 ms).
//!
//! `containersRunning` is not the machine's to tell: the probe reports 0 and
//! the driver puts the engine's count in its place
//! ([`Engine::containers_running`](cropscode_core::Engine::containers_running)).
//! The gateway fields come from the last finished probe of the gateway, when
//! the probe has a [`GatewayHandle`] ([`SysProbe::with_gateway`]); reading
//! them never waits for a probe.

use std::io;
use std::path::{Path, PathBuf};

use crate::gateway::GatewayHandle;
use cropscode_core::SystemProbe;
use cropscode_core::protocol::Heartbeat;
use sysinfo::{CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, RefreshKind, System};

/// The static facts `worker.register` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemInfo {
    /// The machine's host name (`unknown` if the OS will not say).
    pub hostname: String,
    /// `linux`, `darwin` or `windows` (other systems: Rust's name for them).
    pub platform: String,
    /// CPU architecture as Rust names it: `x86_64`, `aarch64`, `arm`, …
    pub arch: String,
    /// Number of logical CPUs.
    pub cpu_count: u32,
    /// Total RAM in bytes.
    pub memory_total: u64,
}

/// Reads the static facts of this machine for `worker.register`.
pub fn system_info() -> SystemInfo {
    let system = System::new_with_specifics(
        RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()).with_memory(MemoryRefreshKind::nothing().with_ram()),
    )
    .ok();
    let cpus = system.as_ref().map_or(0, |s| s.cpus().len());
    let cpus = if cpus > 0 { cpus } else { std::thread::available_parallelism().map_or(1, usize::from) };
    SystemInfo {
        hostname: System::host_name().ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "unknown".into()),
        platform: platform(std::env::consts::OS).into(),
        arch: std::env::consts::ARCH.into(),
        cpu_count: u32::try_from(cpus).unwrap_or(u32::MAX),
        memory_total: system.as_ref().map_or(0, System::total_memory),
    }
}

/// The product's platform names: Rust's, except that macOS is `darwin`.
fn platform(os: &str) -> &str {
    match os {
        "macos" => "darwin",
        other => other,
    }
}

/// core's [`SystemProbe`] over sysinfo. See the [module docs](self).
pub struct SysProbe {
    system: System,
    disks: Disks,
    /// Index in `disks` of the disk holding the data directory.
    data_disk: Option<usize>,
    gateway: Option<GatewayHandle>,
}

impl SysProbe {
    /// A probe reporting on the disk that holds `data_dir` (which need not
    /// exist yet: its nearest existing ancestor decides).
    ///
    /// Takes a first CPU reading, so that the first heartbeat reports usage
    /// over the time since.
    pub fn new(data_dir: &Path) -> io::Result<SysProbe> {
        let system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing().with_usage())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        )
        .map_err(|e| io::Error::other(format!("cannot read system figures: {e}")))?;
        // Without a disk list the heartbeat just omits the disk figures.
        let disks = Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing().with_storage())
            .or_else(|_| Disks::new())
            .map_err(|e| io::Error::other(format!("cannot list disks: {e}")))?;
        let dir = existing_ancestor(data_dir);
        let data_disk = data_disk_index(disks.iter().map(|d| d.mount_point()), &dir);
        match data_disk.map(|i| disks[i].mount_point()) {
            Some(mount) => tracing::debug!(data_dir = %dir.display(), mount = %mount.display(), "data directory disk"),
            None => {
                tracing::warn!(data_dir = %dir.display(), "no disk found for the data directory; heartbeats omit disk figures")
            }
        }
        Ok(SysProbe { system, disks, data_disk, gateway: None })
    }

    /// Heartbeats carry the gateway's status from `gateway`'s last probe
    /// (and nothing while it has no gateway).
    pub fn with_gateway(mut self, gateway: GatewayHandle) -> SysProbe {
        self.gateway = Some(gateway);
        self
    }

    /// Where the disk holding the data directory is mounted, if one was found.
    pub fn data_disk_mount_point(&self) -> Option<&Path> {
        self.data_disk.map(|i| self.disks[i].mount_point())
    }
}

impl std::fmt::Debug for SysProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SysProbe").field("data_disk", &self.data_disk_mount_point()).finish_non_exhaustive()
    }
}

impl SystemProbe for SysProbe {
    fn heartbeat(&mut self) -> Heartbeat {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let (disk_total, disk_free) = match self.data_disk.and_then(|i| self.disks.get_mut(i)) {
            Some(disk) => match disk.refresh_specifics(DiskRefreshKind::nothing().with_storage()) {
                true => (Some(disk.total_space()), Some(disk.available_space().min(disk.total_space()))),
                false => (None, None),
            },
            None => (None, None),
        };
        let (gateway_status, gateway_status_detail) =
            self.gateway.as_ref().map_or((None, None), GatewayHandle::heartbeat_fields);
        Heartbeat {
            cpu_usage: cpu_percent(self.system.global_cpu_usage()),
            memory_free: self.system.available_memory().min(self.system.total_memory()),
            disk_total,
            disk_free,
            // The engine's figure replaces this one (`Engine::containers_running`).
            containers_running: 0,
            gateway_status,
            gateway_status_detail,
        }
    }
}

/// CPU usage as the wire wants it: 0–100, one decimal.
fn cpu_percent(usage: f32) -> f64 {
    if usage.is_finite() { (f64::from(usage.clamp(0.0, 100.0)) * 10.0).round() / 10.0 } else { 0.0 }
}

/// The canonical form of `dir`, or of its nearest ancestor that exists.
fn existing_ancestor(dir: &Path) -> PathBuf {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut missing = Vec::new();
    let mut current = absolute.as_path();
    loop {
        if let Ok(canonical) = current.canonicalize().map(plain) {
            // Re-append what does not exist yet, so the longest-prefix match
            // still sees e.g. a mount point the data dir will live under.
            return missing.iter().rev().fold(canonical, |path: PathBuf, part| path.join(part));
        }
        match (current.parent(), current.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                current = parent;
            }
            _ => return absolute,
        }
    }
}

/// `canonicalize` on Windows answers in the verbatim form (`\\?\C:\…`,
/// `\\?\UNC\server\share\…`), which no mount point (`C:\`) is a prefix of:
/// back to the plain form there. Elsewhere the path is left as it is.
fn plain(path: PathBuf) -> PathBuf {
    if !cfg!(windows) {
        return path;
    }
    match path.to_str().and_then(strip_verbatim) {
        Some(stripped) => PathBuf::from(stripped),
        None => path,
    }
}

/// `\\?\C:\x` → `C:\x`, `\\?\UNC\srv\share\x` → `\\srv\share\x`; `None` for anything else.
fn strip_verbatim(path: &str) -> Option<String> {
    if let Some(rest) = path.strip_prefix(r"\\?\UNC\") {
        return Some(format!(r"\\{rest}"));
    }
    let rest = path.strip_prefix(r"\\?\")?;
    let bytes = rest.as_bytes();
    (bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':').then(|| rest.to_owned())
}

/// Picks the disk whose mount point is the longest prefix of `dir`.
///
/// A mount point listed more than once (bind mounts, or a mount over an
/// earlier one) counts once: the last listing wins, as the later mount is
/// the one that hides the others.
fn data_disk_index<'a>(mount_points: impl Iterator<Item = &'a Path>, dir: &Path) -> Option<usize> {
    let mut best: Option<(usize, &Path)> = None;
    for (index, mount) in mount_points.enumerate() {
        if !dir.starts_with(mount) {
            continue;
        }
        let better = match best {
            None => true,
            Some((_, current)) => mount.components().count() >= current.components().count(),
        };
        if better {
            best = Some((index, mount));
        }
    }
    best.map(|(index, _)| index)
}

#[cfg(test)]
mod tests {
    #[test]
    fn windows_verbatim_paths_become_plain() {
        assert_eq!(strip_verbatim(r"\\?\C:\ProgramData\cropscode").as_deref(), Some(r"C:\ProgramData\cropscode"));
        assert_eq!(strip_verbatim(r"\\?\UNC\srv\share\data").as_deref(), Some(r"\\srv\share\data"));
        assert_eq!(strip_verbatim(r"\\?\Volume{0123}\x"), None);
        assert_eq!(strip_verbatim(r"C:\already\plain"), None);
        assert_eq!(strip_verbatim("/var/lib/cropscode"), None);
    }

    use super::*;

    fn pick(mounts: &[&str], dir: &str) -> Option<usize> {
        data_disk_index(mounts.iter().map(Path::new), Path::new(dir))
    }

    #[test]
    fn longest_mount_prefix_wins() {
        let mounts = ["/", "/var", "/var/lib/cropscode", "/home"];
        assert_eq!(pick(&mounts, "/var/lib/cropscode/data"), Some(2));
        assert_eq!(pick(&mounts, "/var/log"), Some(1));
        assert_eq!(pick(&mounts, "/srv"), Some(0));
        // A prefix of the name is not a prefix of the path.
        assert_eq!(pick(&mounts, "/homework"), Some(0));
        assert_eq!(pick(&["/data"], "/srv"), None);
    }

    #[test]
    fn a_repeated_mount_point_counts_once_and_the_last_wins() {
        assert_eq!(pick(&["/", "/data", "/home", "/data"], "/data/x"), Some(3));
        assert_eq!(pick(&["/", "/"], "/x"), Some(1));
    }

    #[test]
    fn missing_data_dirs_resolve_through_their_ancestors() {
        let base = plain(std::env::temp_dir().canonicalize().unwrap());
        let dir = base.join("cropscode-not-there-yet").join("data");
        assert_eq!(existing_ancestor(&dir), dir);
    }

    #[test]
    fn cpu_usage_is_a_percentage() {
        assert_eq!(cpu_percent(12.34), 12.3);
        assert_eq!(cpu_percent(-1.0), 0.0);
        assert_eq!(cpu_percent(150.0), 100.0);
        assert_eq!(cpu_percent(f32::NAN), 0.0);
    }

    #[test]
    fn platforms_use_the_product_names() {
        assert_eq!(platform("macos"), "darwin");
        assert_eq!(platform("linux"), "linux");
        assert_eq!(platform("windows"), "windows");
    }
}
