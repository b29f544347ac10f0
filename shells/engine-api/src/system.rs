//! Is the engine there, and which one is it.
//!
//! Docker and Podman answer the same `GET /version`; Podman lists a component named
//! `Podman Engine`, Docker one named `Engine`. The answer also fixes the API version the
//! client speaks (see [`crate::client::API_VERSION_MINOR`]).

use serde::Deserialize;

use crate::client::{API_VERSION_MINOR, ApiRequest, EngineClient};
use crate::endpoint::Endpoint;
use crate::error::{EngineError, Result};

/// Which engine serves the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EngineKind {
    /// Docker Engine (moby).
    Docker,
    /// Podman's Docker-compatible API service.
    Podman,
}

impl EngineKind {
    /// `"docker"` or `"podman"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EngineKind::Docker => "docker",
            EngineKind::Podman => "podman",
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `GET /version` says about the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineVersion {
    /// Docker or Podman.
    pub kind: EngineKind,
    /// The engine's own version (`20.10.24+dfsg1`, `4.3.1`).
    pub version: String,
    /// Newest Docker API version the engine serves (`1.41`).
    pub api_version: String,
    /// Oldest Docker API version the engine accepts.
    pub min_api_version: Option<String>,
    /// Operating system of the engine's host (`linux`).
    pub os: String,
    /// Architecture of the engine's host (`amd64`, `arm64`).
    pub arch: String,
    /// Kernel of the engine's host.
    pub kernel_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VersionBody {
    #[serde(default)]
    version: String,
    #[serde(default)]
    api_version: String,
    #[serde(rename = "MinAPIVersion")]
    min_api_version: Option<String>,
    #[serde(default)]
    os: String,
    #[serde(default)]
    arch: String,
    kernel_version: Option<String>,
    #[serde(default)]
    components: Option<Vec<Component>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Component {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
}

impl EngineVersion {
    fn from_body(body: VersionBody) -> EngineVersion {
        let components = body.components.unwrap_or_default();
        let podman = components.iter().find(|c| c.name == "Podman Engine");
        let (kind, version) = match podman {
            Some(c) => (EngineKind::Podman, c.version.clone()),
            None => (EngineKind::Docker, body.version),
        };
        EngineVersion {
            kind,
            version,
            api_version: body.api_version,
            min_api_version: body.min_api_version,
            os: body.os,
            arch: body.arch,
            kernel_version: body.kernel_version,
        }
    }
}

/// Picks the API version to speak: ours, unless the engine's range excludes it.
pub(crate) fn negotiate(version: &EngineVersion) -> Result<u32> {
    let minor = |v: &str| v.strip_prefix("1.").and_then(|m| m.parse::<u32>().ok());
    let newest = minor(&version.api_version).ok_or_else(|| {
        EngineError::Protocol(format!("engine reports an unknown API version {:?}", version.api_version))
    })?;
    if newest < API_VERSION_MINOR {
        return Err(EngineError::Unavailable {
            endpoint: String::new(),
            message: format!(
                "{} {} serves API {}; cropscode needs 1.{API_VERSION_MINOR} or newer",
                version.kind, version.version, version.api_version
            ),
        });
    }
    let oldest = version.min_api_version.as_deref().and_then(minor).unwrap_or(0);
    Ok(API_VERSION_MINOR.max(oldest).min(newest))
}

impl EngineClient {
    /// Connects to the engine at `endpoint`, tells which engine it is and settles the API
    /// version. Fails with [`EngineError::Unavailable`] when nothing answers there.
    pub async fn connect(endpoint: Endpoint) -> Result<(EngineClient, EngineVersion)> {
        let client = EngineClient::new(endpoint);
        let version = client.version().await?;
        Ok((client, version))
    }

    /// `GET /_ping`: the engine is up and answering.
    pub async fn ping(&self) -> Result<()> {
        let (_, body) = self.call(ApiRequest::get("/_ping").unversioned(), Default::default()).await?;
        if body.as_ref() == b"OK" {
            Ok(())
        } else {
            Err(EngineError::Protocol(format!("ping answered {:?}", String::from_utf8_lossy(&body))))
        }
    }

    /// `GET /version`: which engine this is. Also settles the API version used afterwards.
    pub async fn version(&self) -> Result<EngineVersion> {
        let body: VersionBody = self.call_json(ApiRequest::get("/version").unversioned()).await?;
        let version = EngineVersion::from_body(body);
        let minor = negotiate(&version).map_err(|e| match e {
            EngineError::Unavailable { message, .. } => {
                EngineError::Unavailable { endpoint: self.endpoint().to_string(), message }
            }
            other => other,
        })?;
        self.set_api_minor(minor);
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER: &str = r#"{"Platform":{"Name":""},"Components":[{"Name":"Engine","Version":"20.10.24+dfsg1","Details":{"ApiVersion":"1.41"}},{"Name":"containerd","Version":"1.6.20~ds1"}],"Version":"20.10.24+dfsg1","ApiVersion":"1.41","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64","KernelVersion":"6.1.0"}"#;
    const PODMAN: &str = r#"{"Platform":{"Name":"linux/amd64/debian-12"},"Components":[{"Name":"Podman Engine","Version":"4.3.1","Details":{"APIVersion":"4.3.1","MinAPIVersion":"4.0.0"}},{"Name":"Conmon","Version":"conmon version 2.1.6"}],"Version":"4.3.1","ApiVersion":"1.41","MinAPIVersion":"1.24","Os":"linux","Arch":"amd64"}"#;

    fn parse(json: &str) -> EngineVersion {
        EngineVersion::from_body(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn tells_docker_from_podman() {
        let docker = parse(DOCKER);
        assert_eq!(
            (docker.kind, docker.version.as_str(), docker.api_version.as_str()),
            (EngineKind::Docker, "20.10.24+dfsg1", "1.41")
        );
        let podman = parse(PODMAN);
        assert_eq!((podman.kind, podman.version.as_str()), (EngineKind::Podman, "4.3.1"));
    }

    #[test]
    fn negotiates_within_the_engines_range() {
        let mut v = parse(DOCKER);
        assert_eq!(negotiate(&v).unwrap(), 41);
        v.api_version = "1.51".into();
        v.min_api_version = Some("1.44".into());
        assert_eq!(negotiate(&v).unwrap(), 44, "Docker 29 refuses anything older than 1.44");
        v.api_version = "1.40".into();
        v.min_api_version = Some("1.12".into());
        assert!(negotiate(&v).unwrap_err().is_unavailable());
    }
}
