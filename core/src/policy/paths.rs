//! Host paths: lexical normalization and the paths no container may mount.
//!
//! A bind-mount source has already passed decoding (absolute, no `..`, no
//! control characters). Here it is split into components (`/`, `\`, empty and
//! `.` components dropped; a Windows drive letter lower-cased) and compared
//! component-wise, so `/var//run/./docker.sock` is `/var/run/docker.sock` and
//! `/var/run-x` is not under `/var/run`.
//!
//! A path is refused when it *is*, *contains* or *lies inside* a protected
//! path: mounting `/run` hands over `/run/docker.sock` as surely as mounting
//! the socket itself, and `/` contains everything.

use alloc::string::String;
use alloc::vec::Vec;

/// The engines' sockets: never mounted, at any floor. `*` matches one component.
const ENGINE_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/podman/podman.sock",
    "/var/run/podman/podman.sock",
    "/run/user/*/docker.sock",
    "/run/user/*/podman/podman.sock",
    "/var/run/user/*/docker.sock",
    "/var/run/user/*/podman/podman.sock",
    "/home/*/.docker/run/docker.sock",
    "/home/*/.docker/desktop/docker.sock",
    "/Users/*/.docker/run/docker.sock",
    "/Users/*/.local/share/containers/podman/machine/podman.sock",
    "/Users/*/.local/share/containers/podman/machine/*/podman.sock",
    "/var/folders/*/*/T/podman/*",
];

/// The engines' storage (every container's files, other tenants' included):
/// never mounted under `baseline` or `restricted`.
const ENGINE_STORAGE: &[&str] = &[
    "/var/lib/docker",
    "/var/lib/containers",
    "/var/lib/containerd",
    "/run/containerd",
    "/run/containers",
    "/var/run/containers",
    "/root/.local/share/containers",
    "/home/*/.local/share/containers",
    "/etc/cropscode",
];

/// A normalized host path: its components, drive letter lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPath {
    parts: Vec<String>,
    /// `//./pipe/…`, `\\.\pipe\…` or another UNC/device path.
    device: bool,
}

impl HostPath {
    pub(crate) fn parse(path: &str) -> HostPath {
        let device = path.starts_with("//") || path.starts_with("\\\\");
        let mut parts: Vec<String> = Vec::new();
        for (i, part) in path.split(['/', '\\']).filter(|p| !p.is_empty() && *p != ".").enumerate() {
            let is_drive = i == 0 && part.len() == 2 && part.as_bytes()[1] == b':';
            parts.push(if is_drive { part.to_ascii_lowercase() } else { String::from(part) });
        }
        HostPath { parts, device }
    }

    /// `/a/b` (for messages).
    pub(crate) fn display(&self) -> String {
        let mut out = String::new();
        for part in &self.parts {
            out.push('/');
            out.push_str(part);
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    /// This path equals `root` or lies inside it.
    pub(crate) fn is_within(&self, root: &HostPath) -> bool {
        root.device == self.device
            && root.parts.len() <= self.parts.len()
            && root.parts.iter().zip(&self.parts).all(|(r, p)| r == "*" || r == p)
    }

    /// This path equals `other`, lies inside it, or contains it.
    fn overlaps(&self, other: &HostPath) -> bool {
        if self.device != other.device {
            return false;
        }
        self.parts.iter().zip(&other.parts).all(|(a, b)| a == "*" || b == "*" || a == b)
    }

    /// The socket of an engine, a directory holding one, or a named pipe of one.
    pub(crate) fn exposes_engine_socket(&self) -> bool {
        let socket_name = |part: &str| {
            let part = part.to_ascii_lowercase();
            part.ends_with("docker.sock") || part.ends_with("podman.sock")
        };
        if self.parts.iter().any(|p| socket_name(p)) {
            return true;
        }
        if self.device {
            // `//./pipe/docker_engine`, `//./pipe/podman-machine-default`: pipes are files on Windows.
            let lower: Vec<String> = self.parts.iter().map(|p| p.to_ascii_lowercase()).collect();
            return lower.iter().any(|p| p.contains("docker") || p.contains("podman"));
        }
        ENGINE_SOCKETS.iter().any(|socket| self.overlaps(&HostPath::parse(socket)))
    }

    /// The engines' storage, the worker's own files, or one of `extra`.
    pub(crate) fn exposes_protected(&self, extra: &[String]) -> Option<String> {
        let builtin = ENGINE_STORAGE.iter().copied();
        builtin.chain(extra.iter().map(String::as_str)).find(|p| self.overlaps(&HostPath::parse(p))).map(String::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPath {
        HostPath::parse(s)
    }

    #[test]
    fn normalizes_components() {
        assert_eq!(p("/var//run/./docker.sock"), p("/var/run/docker.sock"));
        assert_eq!(p("/srv/data/").display(), "/srv/data");
        assert_eq!(p("/").display(), "/");
        assert_eq!(p("C:\\Users\\me"), p("c:/Users/me"));
    }

    #[test]
    fn within_is_component_wise() {
        assert!(p("/srv/data/x").is_within(&p("/srv/data")));
        assert!(p("/srv/data").is_within(&p("/srv/data/")));
        assert!(!p("/srv/data-x").is_within(&p("/srv/data")));
        assert!(!p("/srv").is_within(&p("/srv/data")));
    }

    #[test]
    fn sockets_their_directories_and_pipes_are_engine_sockets() {
        for path in [
            "/var/run/docker.sock",
            "/run/docker.sock",
            "/run/podman/podman.sock",
            "/run/podman",
            "/run",
            "/var/run",
            "/var",
            "/",
            "/run/user/1000",
            "/run/user/1000/podman",
            "/run/user",
            "/srv/anything/docker.sock",
            "/home/me/data/podman.sock",
            "/srv/My-Docker.Sock",
            "//./pipe/docker_engine",
            "\\\\.\\pipe\\podman-machine-default",
            "/home/alice/.docker/run/docker.sock",
            "/home/alice/.docker",
            "/home",
        ] {
            assert!(p(path).exposes_engine_socket(), "{path}");
        }
        for path in ["/srv/data", "/home/alice/src", "/var/lib/app", "/run/lock", "/tmp/x", "/var/run-x"] {
            assert!(!p(path).exposes_engine_socket(), "{path}");
        }
    }

    #[test]
    fn engine_storage_and_extra_paths_are_protected() {
        let extra = [String::from("/home/alice/.cropscode"), String::from("/srv/cropscode-data")];
        for path in ["/var/lib/docker", "/var/lib/docker/volumes/x/_data", "/var/lib", "/home/alice/.cropscode"] {
            assert!(p(path).exposes_protected(&extra).is_some(), "{path}");
        }
        for path in ["/srv/cropscode-data/audit", "/srv", "/home/bob/.local/share/containers/storage"] {
            assert!(p(path).exposes_protected(&extra).is_some(), "{path}");
        }
        for path in ["/srv/data", "/home/alice/src", "/var/lib/app"] {
            assert!(p(path).exposes_protected(&extra).is_none(), "{path}");
        }
    }
}
