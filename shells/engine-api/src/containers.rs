//! Containers: list, create, start, stop, remove, inspect, and writing files into them.
//!
//! The request and answer types carry the fields the worker uses, in the Engine API's
//! own spelling (PascalCase on the wire); unknown answer fields are ignored, and fields
//! an engine sends as `null` (Podman does, for empty label maps) read as empty.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use serde::{Deserialize, Deserializer, Serialize};

use crate::client::{ApiRequest, EngineClient, Query, path_name};
use crate::error::Result;
use crate::tar::TarBuilder;

/// Which containers to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListContainers {
    /// Stopped containers too, not only running ones.
    pub all: bool,
    /// Label filters: `key` (the label is present) or `key=value`; all must match.
    pub labels: Vec<String>,
    /// Name filters (substring match, as the engines do).
    pub names: Vec<String>,
}

/// One row of `GET /containers/json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSummary {
    /// Full container id.
    pub id: String,
    /// Names, each with a leading `/`.
    #[serde(default, deserialize_with = "nullable")]
    pub names: Vec<String>,
    /// The image as given at creation.
    #[serde(default)]
    pub image: String,
    /// The image id.
    #[serde(rename = "ImageID", default)]
    pub image_id: String,
    /// The command line, as one string.
    #[serde(default)]
    pub command: String,
    /// Creation time, seconds since the epoch.
    #[serde(default)]
    pub created: i64,
    /// `created`, `running`, `paused`, `restarting`, `exited`, `dead`, …
    #[serde(default)]
    pub state: String,
    /// Human-readable status (`Up 3 minutes`).
    #[serde(default)]
    pub status: String,
    /// Labels.
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// Ports, published or only exposed.
    #[serde(default, deserialize_with = "nullable")]
    pub ports: Vec<PortSummary>,
}

/// A port of a listed container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortSummary {
    /// Host address it is published on (empty when only exposed).
    #[serde(rename = "IP", default)]
    pub ip: String,
    /// Port inside the container.
    #[serde(default)]
    pub private_port: u16,
    /// Port on the host; 0 when not published.
    #[serde(default)]
    pub public_port: u16,
    /// `tcp`, `udp` or `sctp`.
    #[serde(rename = "Type", default)]
    pub protocol: String,
}

impl ContainerSummary {
    /// The first name without its leading `/`.
    pub fn name(&self) -> Option<&str> {
        self.names.first().map(|n| n.trim_start_matches('/'))
    }
}

/// What to create: the body of `POST /containers/create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSpec {
    /// Image reference.
    pub image: String,
    /// Command (replaces the image's `CMD`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Entrypoint (replaces the image's `ENTRYPOINT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Environment, `KEY=value`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// User (`1000`, `1000:1000`, `user`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Host name inside the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Allocate a TTY for the main process.
    #[serde(skip_serializing_if = "is_false")]
    pub tty: bool,
    /// Keep stdin open.
    #[serde(skip_serializing_if = "is_false")]
    pub open_stdin: bool,
    /// Seconds between SIGTERM and SIGKILL on stop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// Ports the container exposes (`"8080/tcp"`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    /// Resources, mounts, ports and privileges.
    pub host_config: HostConfig,
}

/// The `{}` value of Docker's set-like maps (`ExposedPorts`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Empty {}

/// The `HostConfig` of a create request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    /// Bind mounts, `host:container[:options]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<String>,
    /// Memory limit in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    /// CPU limit in billionths of a CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nano_cpus: Option<i64>,
    /// Maximum number of processes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// Published ports: `"8080/tcp"` → host addresses.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    /// `bridge`, `none`, `host`, or a network name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// Remove the container when it exits.
    #[serde(skip_serializing_if = "is_false")]
    pub auto_remove: bool,
    /// Mount the root file system read-only.
    #[serde(rename = "ReadonlyRootfs", skip_serializing_if = "is_false")]
    pub readonly_rootfs: bool,
    /// Capabilities to drop (`ALL`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// Capabilities to add.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Security options (`no-new-privileges`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// Run an init process as PID 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// Give the container every capability and every device.
    #[serde(skip_serializing_if = "is_false")]
    pub privileged: bool,
    /// Volume and bind mounts, structured (no `host:container` strings to split).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountSpec>,
    /// Host devices.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceSpec>,
    /// Namespaced kernel parameters.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// PID namespace (`host`, `container:<id>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid_mode: Option<String>,
    /// IPC namespace (`host`, `private`, `shareable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc_mode: Option<String>,
    /// UTS namespace (`host`).
    #[serde(rename = "UTSMode", skip_serializing_if = "Option::is_none")]
    pub uts_mode: Option<String>,
    /// User namespace (`host`, `keep-id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userns_mode: Option<String>,
    /// cgroup namespace (`host`, `private`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroupns_mode: Option<String>,
}

/// One entry of `HostConfig.Mounts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountSpec {
    /// `volume` or `bind`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Volume name or host path.
    pub source: String,
    /// Path in the container.
    pub target: String,
    /// Mounted read-only.
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
}

/// One entry of `HostConfig.Devices`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceSpec {
    /// Device path on the host.
    pub path_on_host: String,
    /// Device path in the container.
    pub path_in_container: String,
    /// cgroup permissions (`rwm`).
    pub cgroup_permissions: String,
}

/// A host address a container port is published on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    /// Host address (`127.0.0.1`); empty for all.
    pub host_ip: String,
    /// Host port; empty for any free port.
    pub host_port: String,
}

/// The answer to a create.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreatedContainer {
    /// The new container's id.
    pub id: String,
    /// Warnings from the engine (e.g. a limit the kernel cannot enforce).
    #[serde(default, deserialize_with = "nullable")]
    pub warnings: Vec<String>,
}

/// How to remove a container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoveContainer {
    /// Kill it first if it is running.
    pub force: bool,
    /// Remove its anonymous volumes too.
    pub volumes: bool,
}

/// `GET /containers/{id}/json`, the fields the worker uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    /// Full id.
    pub id: String,
    /// Name with a leading `/`.
    #[serde(default)]
    pub name: String,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub created: String,
    /// Image id.
    #[serde(default)]
    pub image: String,
    /// Run state.
    #[serde(default)]
    pub state: ContainerState,
    /// Configuration as created.
    #[serde(default)]
    pub config: ContainerConfig,
    /// Exec sessions the engine still knows of (running ones, and recent ones on Docker).
    #[serde(rename = "ExecIDs", default, deserialize_with = "nullable")]
    pub exec_ids: Vec<String>,
}

/// The `State` of an inspected container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    /// `created`, `running`, `exited`, …
    #[serde(default)]
    pub status: String,
    /// The main process is running.
    #[serde(default)]
    pub running: bool,
    /// Paused.
    #[serde(default)]
    pub paused: bool,
    /// Killed by the kernel's OOM killer.
    #[serde(rename = "OOMKilled", default)]
    pub oom_killed: bool,
    /// Host PID of the main process (0 when not running).
    #[serde(default)]
    pub pid: i64,
    /// Exit code of the last run.
    #[serde(default)]
    pub exit_code: i64,
    /// Start time (RFC 3339).
    #[serde(default)]
    pub started_at: String,
    /// End time of the last run (RFC 3339).
    #[serde(default)]
    pub finished_at: String,
}

/// The `Config` of an inspected container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// Image reference as given.
    #[serde(default)]
    pub image: String,
    /// Command.
    #[serde(default, deserialize_with = "nullable")]
    pub cmd: Vec<String>,
    /// Environment.
    #[serde(default, deserialize_with = "nullable")]
    pub env: Vec<String>,
    /// Working directory.
    #[serde(default)]
    pub working_dir: String,
    /// User.
    #[serde(default)]
    pub user: String,
    /// Labels.
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// Has a TTY.
    #[serde(default)]
    pub tty: bool,
}

impl EngineClient {
    /// `GET /containers/json` with filters.
    pub async fn list_containers(&self, options: &ListContainers) -> Result<Vec<ContainerSummary>> {
        let mut query = Query::new();
        if options.all {
            query = query.push("all", "1");
        }
        let mut filters = BTreeMap::new();
        if !options.labels.is_empty() {
            filters.insert("label", &options.labels);
        }
        if !options.names.is_empty() {
            filters.insert("name", &options.names);
        }
        if !filters.is_empty() {
            query = query.push_json("filters", &filters)?;
        }
        self.call_json(ApiRequest::get(format!("/containers/json{}", query.finish()))).await
    }

    /// `POST /containers/create`, optionally with a name. A name in use is a 409 conflict,
    /// a missing image a 404.
    pub async fn create_container(&self, name: Option<&str>, spec: &ContainerSpec) -> Result<CreatedContainer> {
        let query = match name {
            Some(name) => Query::new().push("name", path_name(name)?),
            None => Query::new(),
        };
        self.call_json(ApiRequest::post(format!("/containers/create{}", query.finish())).json(spec)?).await
    }

    /// `POST /containers/{id}/start`. Starting a running container is not an error.
    pub async fn start_container(&self, id: &str) -> Result<()> {
        let request = ApiRequest::post(format!("/containers/{}/start", path_name(id)?));
        self.call(request, Duration::ZERO).await.map(drop)
    }

    /// `POST /containers/{id}/stop`: SIGTERM, then SIGKILL after `grace` (the container's
    /// own stop timeout when `None`). Stopping a stopped container is not an error.
    pub async fn stop_container(&self, id: &str, grace: Option<Duration>) -> Result<()> {
        let mut query = Query::new();
        let mut wait = Duration::from_secs(10);
        if let Some(grace) = grace {
            let seconds = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
            query = query.push("t", seconds.to_string());
            wait = Duration::from_secs(seconds);
        }
        let request = ApiRequest::post(format!("/containers/{}/stop{}", path_name(id)?, query.finish()));
        self.call(request, wait).await.map(drop)
    }

    /// `DELETE /containers/{id}`.
    pub async fn remove_container(&self, id: &str, options: RemoveContainer) -> Result<()> {
        let mut query = Query::new();
        if options.force {
            query = query.push("force", "1");
        }
        if options.volumes {
            query = query.push("v", "1");
        }
        let request = ApiRequest::new(Method::DELETE, format!("/containers/{}{}", path_name(id)?, query.finish()));
        self.call(request, Duration::ZERO).await.map(drop)
    }

    /// `GET /containers/{id}/json`.
    pub async fn inspect_container(&self, id: &str) -> Result<ContainerInspect> {
        self.call_json(ApiRequest::get(format!("/containers/{}/json", path_name(id)?))).await
    }

    /// `PUT /containers/{id}/archive?path=DIR`: unpacks a tar archive into the directory
    /// `dir` of the container (which must exist). Works on stopped containers too.
    pub async fn upload_archive(&self, id: &str, dir: &str, tar: Bytes) -> Result<()> {
        let query = Query::new().push("path", dir).finish();
        let request = ApiRequest::new(Method::PUT, format!("/containers/{}/archive{query}", path_name(id)?)).tar(tar);
        self.call(request, Duration::ZERO).await.map(drop)
    }

    /// `HEAD /containers/{id}/archive?path=PATH`: whether `path` exists in the container
    /// (running or not).
    pub async fn path_exists(&self, id: &str, path: &str) -> Result<bool> {
        let query = Query::new().push("path", path).finish();
        let request = ApiRequest::new(Method::HEAD, format!("/containers/{}/archive{query}", path_name(id)?));
        match self.call(request, Duration::ZERO).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `DELETE /volumes/{name}`.
    pub async fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        let query = if force { Query::new().push("force", "1") } else { Query::new() };
        let request = ApiRequest::new(Method::DELETE, format!("/volumes/{}{}", path_name(name)?, query.finish()));
        self.call(request, Duration::ZERO).await.map(drop)
    }

    /// Writes files into `dir` of the container through an archive upload: contents never
    /// pass through a shell or a command line. See [`TarBuilder`] for paths and owners.
    pub async fn write_files(&self, id: &str, dir: &str, files: TarBuilder) -> Result<()> {
        self.upload_archive(id, dir, Bytes::from(files.finish())).await
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Reads `null` as the empty value.
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_body_uses_the_api_spelling() {
        let spec = ContainerSpec {
            image: "busybox".into(),
            cmd: Some(vec!["sleep".into(), "60".into()]),
            labels: BTreeMap::from([("cropscode.test".into(), "1".into())]),
            host_config: HostConfig {
                memory: Some(1 << 20),
                nano_cpus: Some(500_000_000),
                readonly_rootfs: true,
                ..HostConfig::default()
            },
            ..ContainerSpec::default()
        };
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "Image": "busybox",
                "Cmd": ["sleep", "60"],
                "Labels": {"cropscode.test": "1"},
                "HostConfig": {"Memory": 1048576, "NanoCpus": 500000000, "ReadonlyRootfs": true}
            })
        );
    }

    #[test]
    fn null_lists_and_maps_read_as_empty() {
        let row: ContainerSummary =
            serde_json::from_str(r#"{"Id":"abc","Names":null,"Labels":null,"State":"running"}"#).unwrap();
        assert_eq!(row.id, "abc");
        assert!(row.labels.is_empty() && row.names.is_empty());
        assert_eq!(row.name(), None);
    }
}
