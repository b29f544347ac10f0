//! Finding the engines on this machine.
//!
//! The worker asks, in order: the addresses named by `DOCKER_HOST` and `CONTAINER_HOST`
//! (always listed, so a wrong value shows up as an unreachable engine instead of being
//! ignored), then the standard socket paths that exist: rootful Docker and Podman,
//! rootless Podman and Docker under `$XDG_RUNTIME_DIR`, Docker Desktop on macOS
//! (`~/.docker/run/docker.sock`), Podman machine (`~/.local/share/containers/podman/
//! machine/*/podman.sock`), and on Windows the engines' named pipes. Discovery only lists
//! addresses; [`crate::EngineClient::connect`] tells whether an engine answers and which.

use std::collections::HashSet;
use std::fmt;
#[cfg(unix)]
use std::path::{Path, PathBuf};

use crate::platform::Endpoint;

/// A place an engine may be listening, and why the worker looks there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The address.
    pub endpoint: Endpoint,
    /// Where it came from (for `cropscode status` and logs).
    pub source: Source,
}

/// Why an address is a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// An environment variable (`DOCKER_HOST`, `CONTAINER_HOST`) named it.
    Environment(&'static str),
    /// A standard socket path for the named setup exists.
    Standard(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Environment(name) => write!(f, "${name}"),
            Source::Standard(what) => f.write_str(what),
        }
    }
}

/// An environment variable named an address the client cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadAddress {
    /// The variable.
    pub variable: &'static str,
    /// What is wrong with its value.
    pub message: String,
}

/// What discovery found: candidates in order of preference, and unusable env values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    /// Addresses to try, best first, without duplicates.
    pub candidates: Vec<Candidate>,
    /// `DOCKER_HOST` / `CONTAINER_HOST` values that could not be parsed (e.g. `tcp://`).
    pub rejected: Vec<BadAddress>,
}

/// Discovers engines from this process's environment and the file system.
pub fn discover() -> Discovered {
    discover_with(|name| std::env::var(name).ok())
}

/// Discovers engines with `env` in place of the process environment (`HOME`,
/// `XDG_RUNTIME_DIR`, `DOCKER_HOST`, `CONTAINER_HOST`).
pub fn discover_with(env: impl Fn(&str) -> Option<String>) -> Discovered {
    let mut found = Discovered::default();
    let mut seen = HashSet::new();
    let mut add = |found: &mut Discovered, endpoint: Endpoint, source: Source| {
        let key = match &endpoint {
            Endpoint::Unix(path) => Endpoint::Unix(path.canonicalize().unwrap_or_else(|_| path.clone())),
            other => other.clone(),
        };
        if seen.insert(key) {
            found.candidates.push(Candidate { endpoint, source });
        }
    };

    for variable in ["DOCKER_HOST", "CONTAINER_HOST"] {
        let Some(value) = env(variable).filter(|v| !v.trim().is_empty()) else { continue };
        match Endpoint::parse(value.trim()) {
            Ok(endpoint) => add(&mut found, endpoint, Source::Environment(variable)),
            Err(message) => found.rejected.push(BadAddress { variable, message }),
        }
    }

    for (path, what) in standard_paths(&env) {
        if exists(&path) {
            add(&mut found, path, Source::Standard(what));
        }
    }
    found
}

fn exists(endpoint: &Endpoint) -> bool {
    match endpoint {
        Endpoint::Unix(path) | Endpoint::NamedPipe(path) => path.exists(),
    }
}

#[cfg(unix)]
fn standard_paths(env: &impl Fn(&str) -> Option<String>) -> Vec<(Endpoint, &'static str)> {
    let mut paths = vec![
        (Endpoint::Unix("/var/run/docker.sock".into()), "Docker (rootful)"),
        (Endpoint::Unix("/run/podman/podman.sock".into()), "Podman (rootful)"),
    ];
    if let Some(runtime) = env("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        let runtime = PathBuf::from(runtime);
        paths.push((Endpoint::Unix(runtime.join("podman/podman.sock")), "Podman (rootless)"));
        paths.push((Endpoint::Unix(runtime.join("docker.sock")), "Docker (rootless)"));
    }
    if let Some(home) = env("HOME").filter(|v| !v.is_empty()) {
        let home = PathBuf::from(home);
        paths.push((Endpoint::Unix(home.join(".docker/run/docker.sock")), "Docker Desktop"));
        for socket in podman_machine_sockets(&home.join(".local/share/containers/podman/machine")) {
            paths.push((Endpoint::Unix(socket), "Podman machine"));
        }
    }
    paths
}

#[cfg(windows)]
fn standard_paths(_env: &impl Fn(&str) -> Option<String>) -> Vec<(Endpoint, &'static str)> {
    vec![
        (Endpoint::NamedPipe(r"\\.\pipe\docker_engine".into()), "Docker Desktop"),
        (Endpoint::NamedPipe(r"\\.\pipe\podman-machine-default".into()), "Podman machine"),
    ]
}

/// `machine/*/podman.sock`, sorted so the order does not depend on the directory listing.
#[cfg(unix)]
fn podman_machine_sockets(machines: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(machines) else { return Vec::new() };
    let mut sockets: Vec<PathBuf> =
        entries.flatten().map(|entry| entry.path().join("podman.sock")).filter(|p| p.exists()).collect();
    sockets.sort();
    sockets
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cropscode-discovery-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }

    /// Candidates outside `root` (the machine's own sockets) are left out of comparisons.
    fn under(found: &Discovered, root: &Path) -> Vec<(PathBuf, String)> {
        found
            .candidates
            .iter()
            .filter_map(|c| match &c.endpoint {
                Endpoint::Unix(p) if p.starts_with(root) => {
                    Some((p.strip_prefix(root).unwrap().into(), c.source.to_string()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn env_first_then_existing_standard_paths() {
        let root = scratch("order");
        let home = root.join("home");
        let runtime = root.join("run");
        touch(&runtime.join("podman/podman.sock"));
        touch(&home.join(".docker/run/docker.sock"));
        touch(&home.join(".local/share/containers/podman/machine/qemu/podman.sock"));
        touch(&home.join(".local/share/containers/podman/machine/applehv/podman.sock"));
        let vars: HashMap<&str, String> = HashMap::from([
            ("HOME", home.display().to_string()),
            ("XDG_RUNTIME_DIR", runtime.display().to_string()),
            ("DOCKER_HOST", format!("unix://{}/env.sock", root.display())),
            ("CONTAINER_HOST", "tcp://10.0.0.1:2375".to_owned()),
        ]);
        let found = discover_with(|k| vars.get(k).cloned());
        assert_eq!(
            under(&found, &root),
            vec![
                ("env.sock".into(), "$DOCKER_HOST".to_owned()),
                ("run/podman/podman.sock".into(), "Podman (rootless)".to_owned()),
                ("home/.docker/run/docker.sock".into(), "Docker Desktop".to_owned()),
                ("home/.local/share/containers/podman/machine/applehv/podman.sock".into(), "Podman machine".to_owned()),
                ("home/.local/share/containers/podman/machine/qemu/podman.sock".into(), "Podman machine".to_owned()),
            ]
        );
        assert_eq!(found.rejected.len(), 1);
        assert_eq!(found.rejected[0].variable, "CONTAINER_HOST");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn same_socket_listed_once() {
        let root = scratch("dedup");
        let socket = root.join("run/podman/podman.sock");
        touch(&socket);
        let vars: HashMap<&str, String> = HashMap::from([
            ("XDG_RUNTIME_DIR", root.join("run").display().to_string()),
            ("CONTAINER_HOST", format!("unix://{}", socket.display())),
        ]);
        let found = discover_with(|k| vars.get(k).cloned());
        assert_eq!(under(&found, &root), vec![("run/podman/podman.sock".into(), "$CONTAINER_HOST".to_owned())]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
