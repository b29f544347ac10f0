//! `container.start`, `container.stop`, `container.remove`, `container.list`,
//! `container.list-all`.
//!
//! Start, stop and remove act on a container [`resolve`](WorkerEngine::resolve)d as this
//! worker's and recount the running containers afterwards. Lists ask the engine with label
//! filters, so the machine's other containers never reach the worker at all.

use std::time::Duration;

use cropscode_core::protocol::commands::{
    ContainerListResult, ContainerRemove, ContainerRemoveResult, ContainerStart, ContainerStartResult, ContainerState,
    ContainerStop, ContainerStopResult, ContainerSummary, LABEL_TENANT, PortMapping, PortProtocol,
};

use cropscode_engine_api::{EngineClient, ListContainers, RemoveContainer};

use super::WorkerEngine;
use super::naming::{owned_filters, reported_name};
use super::ownership::gone;
use super::running::refresh_quietly;
use crate::outcome::Outcome;
use crate::owned::OwnedContainers;

impl WorkerEngine {
    pub(crate) async fn start_container(&self, request: ContainerStart) -> Outcome<ContainerStartResult> {
        let client = self.shared.client().await?;
        let owned = self.resolve(&client, &request.container_id, request.tenant.as_deref()).await?;
        let already_running = owned.inspect.state.running;
        if !already_running {
            client.start_container(&owned.id).await.map_err(gone(&request.container_id))?;
            tracing::info!(container = %owned.id, "started container");
            refresh_quietly(&self.shared).await;
        }
        Ok(ContainerStartResult { container_id: owned.id, already_running })
    }

    pub(crate) async fn stop_container(&self, request: ContainerStop) -> Outcome<ContainerStopResult> {
        let client = self.shared.client().await?;
        let owned = self.resolve(&client, &request.container_id, request.tenant.as_deref()).await?;
        let state = &owned.inspect.state;
        if !state.running && !state.paused {
            let exit_code = (state.status == "exited").then(|| exit_code(state.exit_code));
            return Ok(ContainerStopResult { container_id: owned.id, already_stopped: true, exit_code });
        }
        let grace = Duration::from_millis(request.grace_ms());
        client.stop_container(&owned.id, Some(grace)).await.map_err(gone(&request.container_id))?;
        tracing::info!(container = %owned.id, "stopped container");
        let after = client.inspect_container(&owned.id).await.map_err(gone(&request.container_id))?;
        refresh_quietly(&self.shared).await;
        let exit_code = (!after.state.running).then(|| exit_code(after.state.exit_code));
        Ok(ContainerStopResult { container_id: owned.id, already_stopped: false, exit_code })
    }

    pub(crate) async fn remove_container(&self, request: ContainerRemove) -> Outcome<ContainerRemoveResult> {
        let client = self.shared.client().await?;
        let owned = self.resolve(&client, &request.container_id, request.tenant.as_deref()).await?;
        let options = RemoveContainer { force: request.force, volumes: request.remove_volumes };
        let mut removed = client.remove_container(&owned.id, options).await;
        if request.force && removed.as_ref().is_err_and(stopping_race) {
            // Podman refuses a forced remove of a container that stopped between its own
            // state check and the kill ("could not be stopped … state improper"); the
            // container is stopped now, so once more removes it.
            tracing::debug!(container = %owned.id, "the container stopped under a forced remove; removing it again");
            smol::Timer::after(std::time::Duration::from_millis(100)).await;
            removed = client.remove_container(&owned.id, options).await;
        }
        removed.map_err(gone(&request.container_id))?;
        tracing::info!(container = %owned.id, "removed container");
        if owned.inspect.state.running {
            refresh_quietly(&self.shared).await;
        }
        Ok(ContainerRemoveResult { container_id: owned.id })
    }

    /// This worker's containers (of one tenant, when given), newest first.
    pub(crate) async fn list(&self, tenant: Option<&str>, running_only: bool) -> Outcome<ContainerListResult> {
        let client = self.shared.client().await?;
        let Some(me) = self.shared.worker_id() else { return Ok(ContainerListResult { containers: vec![] }) };
        let filter = ListContainers { all: !running_only, labels: owned_filters(&me, tenant), names: vec![] };
        let rows = client.list_containers(&filter).await?;
        let rows = newest_first(&client, rows).await?;
        let containers = rows.into_iter().map(|(row, _)| summary(row)).collect();
        Ok(ContainerListResult { containers })
    }
}

/// Sorts rows newest first. Lists give creation times in whole seconds, and the engines
/// order rows differently (Docker newest first, Podman oldest first), so containers created
/// within the same second are ordered by the nanoseconds of their inspected creation time.
async fn newest_first(
    client: &EngineClient,
    rows: Vec<cropscode_engine_api::ContainerSummary>,
) -> Outcome<Vec<(cropscode_engine_api::ContainerSummary, u32)>> {
    let mut per_second = std::collections::HashMap::new();
    for row in &rows {
        *per_second.entry(row.created).or_insert(0) += 1;
    }
    let mut keyed = Vec::with_capacity(rows.len());
    for row in rows {
        let nanos = if per_second.get(&row.created).copied().unwrap_or(0) > 1 {
            match client.inspect_container(&row.id).await {
                Ok(inspect) => fraction_nanos(&inspect.created),
                // Removed meanwhile: it stays, ordered by its second.
                Err(e) if e.is_not_found() => 0,
                Err(e) => return Err(e.into()),
            }
        } else {
            0
        };
        keyed.push((row, nanos));
    }
    keyed.sort_by_key(|(row, nanos)| std::cmp::Reverse((row.created, *nanos)));
    Ok(keyed)
}

/// The fractional second of an RFC 3339 time, in nanoseconds (`…:05.12Z` → 120000000).
fn fraction_nanos(time: &str) -> u32 {
    let Some((_, fraction)) = time.split_once('.') else { return 0 };
    let digits: String = fraction.chars().take_while(char::is_ascii_digit).take(9).collect();
    format!("{digits:0<9}").parse().unwrap_or(0)
}

fn summary(row: cropscode_engine_api::ContainerSummary) -> ContainerSummary {
    let ports = row
        .ports
        .iter()
        .filter(|p| p.public_port != 0)
        .map(|p| PortMapping {
            container_port: p.private_port,
            host_port: Some(p.public_port),
            protocol: match p.protocol.as_str() {
                "udp" => PortProtocol::Udp,
                "sctp" => PortProtocol::Sctp,
                _ => PortProtocol::Tcp,
            },
            host_ip: (!p.ip.is_empty()).then(|| p.ip.clone()),
        })
        .collect();
    ContainerSummary {
        name: reported_name(&row.labels, row.name().unwrap_or_default()),
        tenant: row.labels.get(LABEL_TENANT).cloned(),
        state: serde_json::from_value(serde_json::Value::String(row.state.to_ascii_lowercase()))
            .unwrap_or(ContainerState::Unknown),
        container_id: row.id,
        image: row.image,
        status: row.status,
        created_at: row.created,
        labels: row.labels,
        ports,
    }
}

fn exit_code(code: i64) -> i32 {
    i32::try_from(code).unwrap_or(i32::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_of_a_second() {
        assert_eq!(fraction_nanos("2026-11-24T06:49:16.699243526Z"), 699_243_526);
        assert_eq!(fraction_nanos("2026-11-24T06:49:16.12Z"), 120_000_000);
        assert_eq!(fraction_nanos("2026-11-24T06:49:16.5+01:00"), 500_000_000);
        assert_eq!(fraction_nanos("2026-11-24T06:49:16Z"), 0);
    }

    #[test]
    fn rows_become_summaries() {
        let row: cropscode_engine_api::ContainerSummary = serde_json::from_str(
            r#"{"Id":"abc","Names":["/cs-acme.dev"],"Image":"busybox","Created":7,"State":"running","Status":"Up 1 second",
                "Labels":{"cropscode.name":"dev","cropscode.tenant":"acme"},
                "Ports":[{"IP":"127.0.0.1","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},{"PrivatePort":53,"Type":"udp"}]}"#,
        )
        .unwrap();
        let listed = summary(row);
        assert_eq!((listed.name.as_str(), listed.tenant.as_deref()), ("dev", Some("acme")));
        assert_eq!(listed.state, ContainerState::Running);
        assert_eq!(
            listed.ports,
            [PortMapping {
                container_port: 80,
                host_port: Some(8080),
                protocol: PortProtocol::Tcp,
                host_ip: Some("127.0.0.1".into())
            }]
        );
        let odd: cropscode_engine_api::ContainerSummary =
            serde_json::from_str(r#"{"Id":"x","Names":["/x"],"State":"configured"}"#).unwrap();
        let odd = summary(odd);
        assert_eq!((odd.state, odd.name.as_str()), (ContainerState::Unknown, "x"));
    }
}

/// Podman's answer to a forced remove racing the container's own stop.
fn stopping_race(error: &cropscode_engine_api::EngineError) -> bool {
    matches!(error, cropscode_engine_api::EngineError::Api { status: 409, message }
        if message.contains("could not be stopped") && message.contains("state improper"))
}
