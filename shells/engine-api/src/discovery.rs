//! Finding the engines on this machine.
//!
//! The worker asks, in order: the addresses named by `DOCKER_HOST` and `CONTAINER_HOST`
//! (always listed, so a wrong value shows up as an unreachable engine instead of being
//! ignored), then the standard places of the system's engine setups, those that exist:
//!
//! - Linux: rootful Docker and Podman (`/var/run/docker.sock`, `/run/podman/podman.sock`),
//!   rootless Podman and Docker under `$XDG_RUNTIME_DIR`, Docker Desktop for Linux
//!   (`~/.docker/desktop/docker.sock`), Podman machine;
//! - macOS: Docker Desktop (`~/.docker/run/docker.sock`), `/var/run/docker.sock` (Docker
//!   Desktop's link, or `podman-mac-helper`'s), Podman machine (Podman 5:
//!   `$TMPDIR/podman/<machine>-api.sock`; Podman 4: `<data>/containers/podman/machine/
//!   <machine>/podman.sock`, data being `$XDG_DATA_HOME` or `~/.local/share`), Colima,
//!   Rancher Desktop, OrbStack;
//! - Windows: the named pipes `\\.\pipe\docker_engine` (Docker Desktop, or Podman machine's
//!   Docker-compatible pipe) and `\\.\pipe\podman-machine-default` (Podman machine). Other
//!   Podman machines are reached through `CONTAINER_HOST`, as `podman` itself does.
//!
//! Which rules apply is an [`Os`] value and the file system is asked through a [`Probe`],
//! so every platform's rules are compiled on every platform and tested on Linux.
//! Discovery only lists addresses; [`crate::EngineClient::connect`] tells whether an
//! engine answers and which.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::endpoint::Endpoint;
pub use crate::endpoint::Os;

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

/// What discovery asks the file system. [`HostProbe`] asks this machine's; tests describe
/// another machine's.
pub trait Probe {
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
    /// The names in directory `dir`, sorted; empty when it cannot be read. On Windows,
    /// `\\.\pipe\` lists the named pipes.
    fn entries(&self, dir: &Path) -> Vec<String>;
    /// The path duplicates are recognised by (symbolic links resolved).
    fn identity(&self, path: &Path) -> PathBuf {
        path.to_path_buf()
    }
}

/// This machine's file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostProbe;

impl Probe for HostProbe {
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn entries(&self, dir: &Path) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        let mut names: Vec<String> = entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
        names.sort();
        names
    }

    fn identity(&self, path: &Path) -> PathBuf {
        path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Discovers engines from this process's environment and the file system.
pub fn discover() -> Discovered {
    discover_with(|name| std::env::var(name).ok())
}

/// Discovers engines with `env` in place of the process environment (`HOME`,
/// `XDG_RUNTIME_DIR`, `XDG_DATA_HOME`, `TMPDIR`, `DOCKER_HOST`, `CONTAINER_HOST`).
pub fn discover_with(env: impl Fn(&str) -> Option<String>) -> Discovered {
    discover_on(Os::CURRENT, env, &HostProbe)
}

/// Discovers engines by the rules of `os`, with `env` as the environment and `probe` as
/// the file system.
pub fn discover_on(os: Os, env: impl Fn(&str) -> Option<String>, probe: &impl Probe) -> Discovered {
    let mut found = Discovered::default();
    let mut seen = HashSet::new();
    let mut add = |found: &mut Discovered, endpoint: Endpoint, source: Source| {
        let key = match &endpoint {
            Endpoint::Unix(path) => Endpoint::Unix(probe.identity(path)),
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

    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    let places = match os {
        Os::Linux => linux_places(&env, probe),
        Os::MacOs => macos_places(&env, probe),
        Os::Windows => windows_places(probe),
    };
    for (endpoint, what) in places {
        add(&mut found, endpoint, Source::Standard(what));
    }
    found
}

/// The existing unix sockets among `places`.
fn existing(places: Vec<(PathBuf, &'static str)>, probe: &impl Probe) -> Vec<(Endpoint, &'static str)> {
    places.into_iter().filter(|(path, _)| probe.exists(path)).map(|(path, what)| (Endpoint::Unix(path), what)).collect()
}

fn linux_places(env: &impl Fn(&str) -> Option<String>, probe: &impl Probe) -> Vec<(Endpoint, &'static str)> {
    let mut places = vec![
        (PathBuf::from("/var/run/docker.sock"), "Docker (rootful)"),
        (PathBuf::from("/run/podman/podman.sock"), "Podman (rootful)"),
    ];
    if let Some(runtime) = env("XDG_RUNTIME_DIR").map(PathBuf::from) {
        places.push((runtime.join("podman/podman.sock"), "Podman (rootless)"));
        places.push((runtime.join("docker.sock"), "Docker (rootless)"));
    }
    let home = env("HOME").map(PathBuf::from);
    if let Some(home) = &home {
        places.push((home.join(".docker/desktop/docker.sock"), "Docker Desktop"));
    }
    let mut found = existing(places, probe);
    found.extend(podman4_machine_sockets(env, home.as_deref(), probe));
    found
}

fn macos_places(env: &impl Fn(&str) -> Option<String>, probe: &impl Probe) -> Vec<(Endpoint, &'static str)> {
    let home = env("HOME").map(PathBuf::from);
    let mut places = Vec::new();
    if let Some(home) = &home {
        places.push((home.join(".docker/run/docker.sock"), "Docker Desktop"));
    }
    // Docker Desktop links it to its own socket (deduplicated then), podman-mac-helper to
    // Podman machine's.
    places.push((PathBuf::from("/var/run/docker.sock"), "Docker-compatible (/var/run/docker.sock)"));
    let mut found = existing(places, probe);

    // Podman 5: the API socket of each machine, forwarded by gvproxy, in the user's TMPDIR.
    if let Some(tmp) = env("TMPDIR").map(PathBuf::from) {
        let dir = tmp.join("podman");
        for name in probe.entries(&dir) {
            if name.ends_with("-api.sock") {
                found.push((Endpoint::Unix(dir.join(name)), "Podman machine"));
            }
        }
    }
    found.extend(podman4_machine_sockets(env, home.as_deref(), probe));

    if let Some(home) = &home {
        found.extend(existing(
            vec![
                (home.join(".colima/default/docker.sock"), "Colima"),
                (home.join(".rd/docker.sock"), "Rancher Desktop"),
                (home.join(".orbstack/run/docker.sock"), "OrbStack"),
            ],
            probe,
        ));
    }
    found
}

/// Podman 4's machines: `<data>/containers/podman/machine/*/podman.sock`, sorted so the
/// order does not depend on the directory listing.
fn podman4_machine_sockets(
    env: &impl Fn(&str) -> Option<String>,
    home: Option<&Path>,
    probe: &impl Probe,
) -> Vec<(Endpoint, &'static str)> {
    // A unix absolute path (`has_root`, not `is_absolute`: the rule is unix's, whichever
    // system evaluates it).
    let data = env("XDG_DATA_HOME").map(PathBuf::from).filter(|p| p.has_root());
    let Some(data) = data.or_else(|| home.map(|h| h.join(".local/share"))) else { return Vec::new() };
    let machines = data.join("containers/podman/machine");
    probe
        .entries(&machines)
        .into_iter()
        .map(|machine| machines.join(machine).join("podman.sock"))
        .filter(|socket| probe.exists(socket))
        .map(|socket| (Endpoint::Unix(socket), "Podman machine"))
        .collect()
}

/// Where Windows lists its named pipes.
const PIPE_DIR: &str = r"\\.\pipe\";

fn windows_places(probe: &impl Probe) -> Vec<(Endpoint, &'static str)> {
    // The pipes are read from the listing of `\\.\pipe\` rather than opened one by one:
    // opening a pipe connects to its server. Windows always has pipes, so an empty listing
    // means it could not be read, and the pipes are then asked for directly.
    let pipes = probe.entries(Path::new(PIPE_DIR));
    let present = |name: &str| {
        if pipes.is_empty() {
            probe.exists(&Path::new(PIPE_DIR).join(name))
        } else {
            pipes.iter().any(|p| p.eq_ignore_ascii_case(name))
        }
    };
    [("docker_engine", "Docker Desktop"), ("podman-machine-default", "Podman machine")]
        .into_iter()
        .filter(|(name, _)| present(name))
        .map(|(name, what)| (Endpoint::NamedPipe(PathBuf::from(format!("{PIPE_DIR}{name}"))), what))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A made-up machine: the sockets (or pipes, by name) that exist on it.
    #[derive(Default)]
    struct Machine {
        files: Vec<PathBuf>,
        pipes: Vec<&'static str>,
    }

    impl Probe for Machine {
        fn exists(&self, path: &Path) -> bool {
            self.files.iter().any(|f| f.starts_with(path))
        }

        fn entries(&self, dir: &Path) -> Vec<String> {
            if dir == Path::new(PIPE_DIR) {
                return self.pipes.iter().map(|p| p.to_string()).collect();
            }
            let mut names: Vec<String> = self
                .files
                .iter()
                .filter_map(|f| f.strip_prefix(dir).ok()?.iter().next()?.to_str().map(str::to_owned))
                .collect();
            names.sort();
            names.dedup();
            names
        }
    }

    fn machine(files: &[&str]) -> Machine {
        Machine { files: files.iter().map(PathBuf::from).collect(), ..Machine::default() }
    }

    /// Endpoints compare by path components, so these tests pass whatever the separator of
    /// the system running them.
    fn found(os: Os, vars: &[(&str, &str)], probe: &impl Probe) -> Vec<(Endpoint, String)> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        discover_on(os, |k| vars.get(k).cloned(), probe)
            .candidates
            .into_iter()
            .map(|c| (c.endpoint, c.source.to_string()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(Endpoint, String)> {
        list.iter().map(|(a, b)| (Endpoint::parse(a).unwrap(), b.to_string())).collect()
    }

    #[test]
    fn linux_env_first_then_existing_standard_sockets() {
        let probe = machine(&[
            "/var/run/docker.sock",
            "/run/user/1000/podman/podman.sock",
            "/home/u/.docker/desktop/docker.sock",
            "/home/u/.local/share/containers/podman/machine/qemu/podman.sock",
            "/home/u/.local/share/containers/podman/machine/applehv/podman.sock",
            "/home/u/.docker/run/docker.sock",
        ]);
        let vars = [
            ("HOME", "/home/u"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ("DOCKER_HOST", "unix:///srv/env.sock"),
            ("CONTAINER_HOST", "tcp://10.0.0.1:2375"),
        ];
        assert_eq!(
            found(Os::Linux, &vars, &probe),
            pairs(&[
                ("unix:///srv/env.sock", "$DOCKER_HOST"),
                ("unix:///var/run/docker.sock", "Docker (rootful)"),
                ("unix:///run/user/1000/podman/podman.sock", "Podman (rootless)"),
                ("unix:///home/u/.docker/desktop/docker.sock", "Docker Desktop"),
                ("unix:///home/u/.local/share/containers/podman/machine/applehv/podman.sock", "Podman machine"),
                ("unix:///home/u/.local/share/containers/podman/machine/qemu/podman.sock", "Podman machine"),
            ])
        );
        let vars = HashMap::from([("CONTAINER_HOST", "tcp://10.0.0.1:2375")]);
        let rejected = discover_on(Os::Linux, |k| vars.get(k).map(|v| v.to_string()), &probe).rejected;
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].variable, "CONTAINER_HOST");
    }

    #[test]
    fn macos_docker_desktop_podman_machine_and_friends() {
        let tmp = "/var/folders/xy/abc/T";
        let probe = machine(&[
            "/var/run/docker.sock",
            "/Users/u/.docker/run/docker.sock",
            "/var/folders/xy/abc/T/podman/podman-machine-default-api.sock",
            "/var/folders/xy/abc/T/podman/podman-machine-default-gvproxy.sock",
            "/Users/u/.local/share/containers/podman/machine/qemu/podman.sock",
            "/Users/u/.colima/default/docker.sock",
            "/Users/u/.orbstack/run/docker.sock",
            // Linux places mean nothing on macOS.
            "/run/podman/podman.sock",
            "/run/user/501/podman/podman.sock",
        ]);
        let vars = [("HOME", "/Users/u"), ("TMPDIR", tmp), ("XDG_RUNTIME_DIR", "/run/user/501")];
        assert_eq!(
            found(Os::MacOs, &vars, &probe),
            pairs(&[
                ("unix:///Users/u/.docker/run/docker.sock", "Docker Desktop"),
                ("unix:///var/run/docker.sock", "Docker-compatible (/var/run/docker.sock)"),
                ("unix:///var/folders/xy/abc/T/podman/podman-machine-default-api.sock", "Podman machine"),
                ("unix:///Users/u/.local/share/containers/podman/machine/qemu/podman.sock", "Podman machine"),
                ("unix:///Users/u/.colima/default/docker.sock", "Colima"),
                ("unix:///Users/u/.orbstack/run/docker.sock", "OrbStack"),
            ])
        );
        // CONTAINER_HOST naming Podman's socket puts it first, once; XDG_DATA_HOME moves
        // Podman 4's machines.
        let probe = machine(&[
            "/var/folders/xy/abc/T/podman/podman-machine-default-api.sock",
            "/Users/u/data/containers/podman/machine/m1/podman.sock",
        ]);
        let vars = [
            ("HOME", "/Users/u"),
            ("TMPDIR", tmp),
            ("XDG_DATA_HOME", "/Users/u/data"),
            ("CONTAINER_HOST", "unix:///var/folders/xy/abc/T/podman/podman-machine-default-api.sock"),
        ];
        assert_eq!(
            found(Os::MacOs, &vars, &probe),
            pairs(&[
                ("unix:///var/folders/xy/abc/T/podman/podman-machine-default-api.sock", "$CONTAINER_HOST"),
                ("unix:///Users/u/data/containers/podman/machine/m1/podman.sock", "Podman machine"),
            ])
        );
        // Without HOME or TMPDIR only the system socket can be found.
        assert_eq!(
            found(Os::MacOs, &[], &machine(&["/var/run/docker.sock"])),
            pairs(&[("unix:///var/run/docker.sock", "Docker-compatible (/var/run/docker.sock)")])
        );
    }

    #[test]
    fn windows_named_pipes() {
        let probe = Machine {
            pipes: vec!["InitShutdown", "docker_engine", "lsass", "podman-machine-default"],
            ..Machine::default()
        };
        assert_eq!(
            found(Os::Windows, &[("HOME", "C:/Users/u")], &probe),
            pairs(&[
                ("npipe:////./pipe/docker_engine", "Docker Desktop"),
                ("npipe:////./pipe/podman-machine-default", "Podman machine"),
            ])
        );
        // Podman's own spelling of CONTAINER_HOST: the pipe is listed once, from the variable.
        let vars = [("CONTAINER_HOST", "npipe:////./pipe/podman-machine-default")];
        assert_eq!(
            found(Os::Windows, &vars, &probe),
            pairs(&[
                ("npipe:////./pipe/podman-machine-default", "$CONTAINER_HOST"),
                ("npipe:////./pipe/docker_engine", "Docker Desktop"),
            ])
        );
        // Unix sockets are never standard places on Windows.
        let probe = Machine { files: vec!["/var/run/docker.sock".into()], pipes: vec!["lsass"] };
        assert_eq!(found(Os::Windows, &[], &probe), pairs(&[]));
    }

    #[test]
    fn windows_unlisted_pipes_are_asked_for_directly() {
        let probe = Machine { files: vec![Path::new(PIPE_DIR).join("docker_engine")], pipes: vec![] };
        assert_eq!(found(Os::Windows, &[], &probe), pairs(&[("npipe:////./pipe/docker_engine", "Docker Desktop")]));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn host_same_socket_listed_once_through_a_link() {
        let root = std::env::temp_dir().join(format!("cropscode-discovery-dedup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let socket = root.join("run/podman/podman.sock");
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        std::fs::write(&socket, b"").unwrap();
        std::os::unix::fs::symlink(&socket, root.join("link.sock")).unwrap();
        let vars: HashMap<&str, String> = HashMap::from([
            ("XDG_RUNTIME_DIR", root.join("run").display().to_string()),
            ("CONTAINER_HOST", format!("unix://{}", root.join("link.sock").display())),
        ]);
        let found = discover_with(|k| vars.get(k).cloned());
        let mine: Vec<_> = found
            .candidates
            .iter()
            .filter(|c| matches!(&c.endpoint, Endpoint::Unix(p) if p.starts_with(&root)))
            .map(|c| c.source.to_string())
            .collect();
        assert_eq!(mine, vec!["$CONTAINER_HOST".to_owned()]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
