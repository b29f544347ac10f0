//! Where an engine listens: [`Endpoint`] (a unix socket or a named pipe) and the [`Os`]
//! whose rules discovery applies. Opening a connection is [`platform`](crate::platform)'s.

use std::fmt;
use std::path::PathBuf;

/// The operating system whose engine setups and paths apply. Discovery takes it as a value
/// (not only `cfg`), so every platform's rules are compiled everywhere and tested on Linux.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Os {
    /// Linux, and the other unix systems that are not macOS.
    Linux,
    /// macOS: Docker Desktop, Podman machine, and the other VM-based engines.
    MacOs,
    /// Windows: the engines listen on named pipes.
    Windows,
}

impl Os {
    /// The system this binary was built for.
    pub const CURRENT: Os = if cfg!(windows) {
        Os::Windows
    } else if cfg!(target_os = "macos") {
        Os::MacOs
    } else {
        Os::Linux
    };
}

/// The address of an engine's API.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// A unix socket (Linux, macOS).
    Unix(PathBuf),
    /// A Windows named pipe, e.g. `\\.\pipe\docker_engine`.
    NamedPipe(PathBuf),
}

impl Endpoint {
    /// Parses `unix:///path`, `npipe:////./pipe/name` (Docker's spelling), a bare absolute
    /// path (taken as a unix socket) or a bare pipe path (`\\.\pipe\name`). Other schemes
    /// (`tcp://`, `ssh://`) are not supported: the worker talks to the engine on its own
    /// machine.
    pub fn parse(value: &str) -> Result<Endpoint, String> {
        if let Some(path) = value.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(format!("{value}: empty socket path"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(path) = value.strip_prefix("npipe://") {
            // Docker writes npipe:////./pipe/docker_engine; the pipe is \\.\pipe\docker_engine.
            let trimmed = path.trim_start_matches('/');
            if trimmed.is_empty() {
                return Err(format!("{value}: empty pipe name"));
            }
            return Ok(Endpoint::NamedPipe(PathBuf::from(format!(r"\\{}", trimmed.replace('/', r"\")))));
        }
        if value.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(value)));
        }
        if value.starts_with(r"\\.\pipe\") && value.len() > r"\\.\pipe\".len() {
            return Ok(Endpoint::NamedPipe(PathBuf::from(value)));
        }
        let scheme = value.split("://").next().unwrap_or(value);
        Err(format!("{value}: unsupported engine address (scheme {scheme}); use unix:// or npipe://"))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::NamedPipe(path) => write!(f, "npipe://{}", path.display().to_string().replace('\\', "/")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_engine_addresses() {
        assert_eq!(
            Endpoint::parse("unix:///run/podman/podman.sock"),
            Ok(Endpoint::Unix("/run/podman/podman.sock".into()))
        );
        assert_eq!(Endpoint::parse("/var/run/docker.sock"), Ok(Endpoint::Unix("/var/run/docker.sock".into())));
        assert_eq!(
            Endpoint::parse("npipe:////./pipe/docker_engine"),
            Ok(Endpoint::NamedPipe(r"\\.\pipe\docker_engine".into()))
        );
        assert_eq!(
            Endpoint::parse("npipe:///./pipe/podman-machine-default"),
            Ok(Endpoint::NamedPipe(r"\\.\pipe\podman-machine-default".into()))
        );
        assert_eq!(
            Endpoint::parse(r"\\.\pipe\docker_engine"),
            Ok(Endpoint::NamedPipe(r"\\.\pipe\docker_engine".into()))
        );
        assert!(Endpoint::parse(r"\\.\pipe\").is_err());
        assert!(Endpoint::parse("npipe://").is_err());
        assert!(Endpoint::parse("tcp://127.0.0.1:2375").is_err());
        assert!(Endpoint::parse("unix://").is_err());
        assert_eq!(Endpoint::Unix("/a.sock".into()).to_string(), "unix:///a.sock");
        assert_eq!(Endpoint::NamedPipe(r"\\.\pipe\docker_engine".into()).to_string(), "npipe:////./pipe/docker_engine");
    }
}
