//! `container.create`: pull the image if needed (reporting progress), then create the
//! container from the normalized request.
//!
//! [`container_spec`] is a pure, field-for-field translation of
//! [`ContainerCreate`] into the engines' create body: it adds only the worker's labels
//! (`cropscode.managed`, `cropscode.worker`, `cropscode.tenant`, `cropscode.name`) and sets
//! nothing a request did not ask for, so a policy that judges the `ContainerCreate` judges
//! exactly what the engine receives.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use cropscode_core::policy::SecurityFloor;
use cropscode_core::protocol::ErrorCode;
use cropscode_core::protocol::commands::{
    ContainerCreate, ContainerCreateResult, ImageProgress, MountType, PortProtocol, ProgressPhase, PullPolicy,
};

use cropscode_engine_api::{
    ContainerSpec, DeviceSpec, Empty, EngineClient, HostConfig, MountSpec, PortBinding, Progress,
};

use super::WorkerEngine;
use super::naming::{container_labels, engine_name};
use crate::execution::ProgressSink;
use crate::outcome::{Failure, Outcome};
use crate::owned::OwnedContainers;

/// Byte counts of one layer are reported at most this often (status changes always are).
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

impl WorkerEngine {
    pub(crate) async fn create(
        &self,
        request: ContainerCreate,
        progress: &ProgressSink,
    ) -> Outcome<ContainerCreateResult> {
        let client = self.shared.client().await?;
        let Some(me) = self.shared.worker_id() else {
            return Err(Failure::wire(ErrorCode::EngineUnavailable, "the worker has no id yet (not registered)"));
        };
        let present = client.image_exists(&request.image).await?;
        let pull = match request.pull {
            PullPolicy::Always => true,
            PullPolicy::Missing => !present,
            PullPolicy::Never if !present => {
                return Err(Failure::wire(
                    ErrorCode::NotFound,
                    format!("image `{}` is not present and `pull` is `never`", request.image),
                ));
            }
            PullPolicy::Never => false,
        };
        if pull {
            // The image as it was before, if any: pulling the owner's own image again
            // (`pull: always`) does not make it the worker's; a new version does.
            let before = if present { client.inspect_image(&request.image).await.ok().map(|i| i.id) } else { None };
            pull_image(&client, &request.image, progress).await?;
            match client.inspect_image(&request.image).await {
                Ok(image) if before.as_deref() != Some(image.id.as_str()) => self.pulled.add(&image.id),
                Ok(_) => {}
                Err(error) => tracing::warn!(image = %request.image, %error, "cannot record a pulled image"),
            }
        }
        if request.user.is_none() && self.shared.floor() == SecurityFloor::Restricted {
            let image = client.inspect_image(&request.image).await?;
            self.check_user(None, &image.config.user)?;
        }
        let labels = container_labels(&request.labels, &me, &request.tenant, request.name.as_deref());
        let name = request.name.as_deref().map(|name| engine_name(&request.tenant, name));
        let spec = container_spec(&request, labels);
        let created = client.create_container(name.as_deref(), &spec).await?;
        let reported = match &request.name {
            Some(name) => name.clone(),
            // The engine generated a name; it is what the orchestrator can address.
            None => client.inspect_container(&created.id).await?.name.trim_start_matches('/').to_owned(),
        };
        tracing::info!(container = %created.id, name = %reported, tenant = %request.tenant, "created container");
        Ok(ContainerCreateResult {
            container_id: created.id,
            name: reported,
            image: request.image,
            pulled: pull,
            warnings: created.warnings,
        })
    }
}

/// Pulls `image`, reporting the engine's progress (throttled per layer).
pub(crate) async fn pull_image(client: &EngineClient, image: &str, progress: &ProgressSink) -> Outcome<()> {
    let mut stream = client.pull_image(image).await?;
    let mut throttle = Throttle::default();
    while let Some(message) = stream.next().await {
        let message = message?;
        if let Some(report) = throttle.pass(&message) {
            progress.report(&report);
        }
    }
    tracing::info!(%image, "pulled image");
    Ok(())
}

/// Drops byte-count updates of a layer that come faster than [`PROGRESS_INTERVAL`].
#[derive(Default)]
struct Throttle {
    layers: HashMap<String, (String, Instant)>,
}

impl Throttle {
    fn pass(&mut self, message: &Progress) -> Option<ImageProgress> {
        let status = message.status.clone()?;
        let detail = message.progress_detail.unwrap_or_default();
        let report = ImageProgress {
            phase: ProgressPhase::Pull,
            message: status.clone(),
            layer: message.id.clone(),
            current_bytes: detail.current,
            total_bytes: detail.total,
        };
        let Some(layer) = &message.id else { return Some(report) };
        let now = Instant::now();
        match self.layers.get_mut(layer) {
            Some((last_status, at)) if *last_status == status && now.duration_since(*at) < PROGRESS_INTERVAL => None,
            Some(entry) => {
                *entry = (status, now);
                Some(report)
            }
            None => {
                self.layers.insert(layer.clone(), (status, now));
                Some(report)
            }
        }
    }
}

/// The engine's create body for `request`, labelled with `labels`.
pub(crate) fn container_spec(request: &ContainerCreate, labels: BTreeMap<String, String>) -> ContainerSpec {
    let mut exposed_ports = BTreeMap::new();
    let mut port_bindings: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    for port in &request.ports {
        let key = format!("{}/{}", port.container_port, protocol(port.protocol));
        exposed_ports.insert(key.clone(), Empty {});
        port_bindings.entry(key).or_default().push(PortBinding {
            host_ip: port.host_ip.clone().unwrap_or_default(),
            host_port: port.host_port.map(|p| p.to_string()).unwrap_or_default(),
        });
    }
    let resources = request.resources.clone().unwrap_or_default();
    ContainerSpec {
        image: request.image.clone(),
        cmd: (!request.command.is_empty()).then(|| request.command.clone()),
        entrypoint: request.entrypoint.clone(),
        env: request.env.to_pairs(),
        working_dir: request.working_dir.clone(),
        user: request.user.clone(),
        hostname: request.hostname.clone(),
        labels,
        exposed_ports,
        host_config: HostConfig {
            memory: resources.memory_bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
            nano_cpus: resources.cpus.map(|cpus| (cpus * 1e9).round() as i64),
            pids_limit: resources.pids_limit.map(i64::from),
            port_bindings,
            network_mode: request.network_mode.clone(),
            readonly_rootfs: request.read_only_rootfs,
            cap_add: request.cap_add.clone(),
            cap_drop: request.cap_drop.clone(),
            security_opt: request.security_opt.clone(),
            privileged: request.privileged,
            mounts: request
                .mounts
                .iter()
                .map(|m| MountSpec {
                    kind: match m.kind {
                        MountType::Volume => "volume".into(),
                        MountType::Bind => "bind".into(),
                    },
                    source: m.source.clone(),
                    target: m.target.clone(),
                    read_only: m.read_only,
                })
                .collect(),
            devices: request
                .devices
                .iter()
                .map(|d| DeviceSpec {
                    path_on_host: d.host_path.clone(),
                    path_in_container: d.container_path.clone().unwrap_or_else(|| d.host_path.clone()),
                    cgroup_permissions: d.permissions.clone().unwrap_or_else(|| "rwm".into()),
                })
                .collect(),
            sysctls: request.sysctls.clone(),
            pid_mode: request.pid_mode.clone(),
            ipc_mode: request.ipc_mode.clone(),
            uts_mode: request.uts_mode.clone(),
            userns_mode: request.userns_mode.clone(),
            cgroupns_mode: request.cgroupns_mode.clone(),
            ..HostConfig::default()
        },
        ..ContainerSpec::default()
    }
}

fn protocol(protocol: PortProtocol) -> &'static str {
    match protocol {
        PortProtocol::Tcp => "tcp",
        PortProtocol::Udp => "udp",
        PortProtocol::Sctp => "sctp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cropscode_core::protocol::Command;

    fn request(params: serde_json::Value) -> ContainerCreate {
        match Command::decode("container.create", params).expect("valid") {
            Command::ContainerCreate(create) => create,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_field_reaches_the_engine_and_nothing_else() {
        let create = request(serde_json::json!({
            "image": "busybox", "tenant": "acme", "name": "dev",
            "command": ["sleep", "1"], "entrypoint": ["/bin/sh", "-c"], "env": {"A": "1"},
            "workingDir": "/w", "user": "1000:1000", "hostname": "box",
            "resources": {"cpus": 1.5, "memoryBytes": 67108864, "pidsLimit": 64},
            "ports": [{"containerPort": 80, "hostPort": 8080, "hostIp": "127.0.0.1"}, {"containerPort": 53, "protocol": "udp"}],
            "mounts": [{"type": "volume", "source": "data", "target": "/data", "readOnly": true}],
            "privileged": true, "capAdd": ["NET_ADMIN"], "capDrop": ["ALL"], "securityOpt": ["no-new-privileges"],
            "networkMode": "none", "pidMode": "host", "ipcMode": "private", "utsMode": "host",
            "usernsMode": "host", "cgroupnsMode": "private",
            "devices": [{"hostPath": "/dev/fuse"}], "sysctls": {"net.ipv4.ip_forward": "1"}, "readOnlyRootfs": true
        }));
        let labels = container_labels(&create.labels, "w-1", "acme", Some("dev"));
        let body = serde_json::to_value(container_spec(&create, labels)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "Image": "busybox", "Cmd": ["sleep", "1"], "Entrypoint": ["/bin/sh", "-c"], "Env": ["A=1"],
                "WorkingDir": "/w", "User": "1000:1000", "Hostname": "box",
                "Labels": {"cropscode.managed": "true", "cropscode.name": "dev", "cropscode.tenant": "acme", "cropscode.worker": "w-1"},
                "ExposedPorts": {"53/udp": {}, "80/tcp": {}},
                "HostConfig": {
                    "Memory": 67108864, "NanoCpus": 1500000000, "PidsLimit": 64,
                    "PortBindings": {
                        "53/udp": [{"HostIp": "", "HostPort": ""}],
                        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]
                    },
                    "NetworkMode": "none", "ReadonlyRootfs": true, "CapDrop": ["ALL"], "CapAdd": ["NET_ADMIN"],
                    "SecurityOpt": ["no-new-privileges"], "Privileged": true,
                    "Mounts": [{"Type": "volume", "Source": "data", "Target": "/data", "ReadOnly": true}],
                    "Devices": [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}],
                    "Sysctls": {"net.ipv4.ip_forward": "1"},
                    "PidMode": "host", "IpcMode": "private", "UTSMode": "host", "UsernsMode": "host", "CgroupnsMode": "private"
                }
            })
        );
    }

    #[test]
    fn a_minimal_request_asks_for_nothing_but_the_image_and_labels() {
        let create = request(serde_json::json!({"image": "busybox", "tenant": "acme"}));
        let labels = container_labels(&create.labels, "w-1", "acme", None);
        let body = serde_json::to_value(container_spec(&create, labels)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "Image": "busybox",
                "Labels": {"cropscode.managed": "true", "cropscode.name": "", "cropscode.tenant": "acme", "cropscode.worker": "w-1"},
                "HostConfig": {}
            })
        );
    }

    #[test]
    fn layer_byte_counts_are_throttled_but_status_changes_pass() {
        let mut throttle = Throttle::default();
        let msg = |status: &str, id: Option<&str>, current| Progress {
            status: Some(status.into()),
            id: id.map(Into::into),
            progress_detail: Some(cropscode_engine_api::ProgressDetail { current: Some(current), total: Some(100) }),
            ..Progress::default()
        };
        assert!(throttle.pass(&msg("Downloading", Some("l1"), 1)).is_some());
        assert!(throttle.pass(&msg("Downloading", Some("l1"), 2)).is_none());
        assert!(throttle.pass(&msg("Downloading", Some("l2"), 2)).is_some());
        let done = throttle.pass(&msg("Download complete", Some("l1"), 100)).unwrap();
        assert_eq!((done.layer.as_deref(), done.current_bytes, done.total_bytes), (Some("l1"), Some(100), Some(100)));
        assert!(throttle.pass(&msg("Status: Downloaded newer image", None, 0)).is_some());
        assert!(throttle.pass(&Progress::default()).is_none());
    }
}
