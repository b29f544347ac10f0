//! From a command's `containerId` (and `tenant`) to a container this worker owns.
//!
//! Every command that targets a container goes through [`OwnedContainers::resolve`] before
//! anything else. A container is this worker's when it carries `cropscode.managed=true`
//! and `cropscode.worker=<this worker's id>`, and, when the command names a tenant,
//! `cropscode.tenant=<that tenant>`. Anything else — a missing container, the machine's
//! own containers, another worker's, another tenant's — is answered `not_found` with one
//! and the same message, so a command cannot learn whether such a container exists.
//!
//! `containerId` may be the engine's id (or a prefix of it), the engine's name, or the name
//! the orchestrator gave at creation. Lookup order:
//!
//! 1. with a tenant: the engine name `cs-<tenant>.<containerId>`;
//! 2. `containerId` as the engine resolves it (id, id prefix, engine name);
//! 3. without a tenant: this worker's containers labelled `cropscode.name=<containerId>`
//!    (two tenants may use the same name: then `conflict`, asking for the tenant).
//!
//! The container is acted on by its full id from then on, so a rename or a new container
//! with the same name cannot redirect the command half-way.
//!
//! The same [`OwnedContainers`] implementation serves the streams (terminals, displays,
//! background execs), with the engine-side user check of the security floor.

use cropscode_core::policy::Policy;
use cropscode_core::protocol::ErrorCode;
use cropscode_engine_api::{EngineClient, EngineError, ListContainers};

use super::WorkerEngine;
use super::naming::{LABEL_NAME, engine_name, is_owned, owned_filters};
use crate::outcome::{Failure, Outcome};
use crate::owned::{Owned, OwnedContainers};

impl OwnedContainers for WorkerEngine {
    async fn serving_client(&self) -> Outcome<EngineClient> {
        self.client()
            .await
            .ok_or_else(|| Failure::wire(ErrorCode::EngineUnavailable, "no container engine answers on this worker"))
    }

    /// Fails with `engine_unavailable` when the engine is gone.
    async fn resolve(&self, client: &EngineClient, container_id: &str, tenant: Option<&str>) -> Outcome<Owned> {
        let Some(me) = self.shared.worker_id() else { return Err(not_found(container_id)) };
        if let Some(tenant) = tenant
            && let Some(owned) = inspect_owned(client, &engine_name(tenant, container_id), &me, Some(tenant)).await?
        {
            return Ok(owned);
        }
        if let Some(owned) = inspect_owned(client, container_id, &me, tenant).await? {
            return Ok(owned);
        }
        if tenant.is_none() {
            let mut labels = owned_filters(&me, None);
            labels.push(format!("{LABEL_NAME}={container_id}"));
            let found = client.list_containers(&ListContainers { all: true, labels, names: vec![] }).await?;
            match found.as_slice() {
                [] => {}
                [only] => {
                    if let Some(owned) = inspect_owned(client, &only.id, &me, None).await? {
                        return Ok(owned);
                    }
                }
                _ => {
                    return Err(Failure::wire(
                        ErrorCode::Conflict,
                        format!("several tenants have a container named `{container_id}`: name the `tenant`"),
                    ));
                }
            }
        }
        Err(not_found(container_id))
    }

    /// `effective` is the image's `USER` or the container's configured user; `""` is root.
    fn check_user(&self, requested: Option<&str>, effective: &str) -> Outcome<()> {
        if requested.is_some() {
            // A named user was judged by the floor before the command got here.
            return Ok(());
        }
        Policy::new(self.shared.floor()).judge_user(effective).map_err(|refusal| Failure::Wire(refusal.to_wire()))
    }
}

/// Inspects `name`; `None` when it does not exist or is not owned.
async fn inspect_owned(client: &EngineClient, name: &str, me: &str, tenant: Option<&str>) -> Outcome<Option<Owned>> {
    match client.inspect_container(name).await {
        Ok(inspect) if is_owned(&inspect.config.labels, me, tenant) => {
            Ok(Some(Owned { id: inspect.id.clone(), inspect }))
        }
        Ok(_) => Ok(None),
        // Missing, an ambiguous id prefix, or a name the client would not put in a URL.
        Err(e) if e.is_not_found() || matches!(e, EngineError::InvalidArgument(_)) || e.status() == Some(400) => {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The one answer for every container the command may not see.
pub(crate) fn not_found(container_id: &str) -> Failure {
    Failure::wire(ErrorCode::NotFound, format!("no managed container `{container_id}`"))
}

/// Maps an engine's 404 on an owned container (removed meanwhile) to the same answer.
/// A 404 about something else the container needs (Docker refuses a start whose network
/// is missing with 404) is the request's fault: `invalid_request` with the engine's words.
pub(crate) fn gone(container_id: &str) -> impl FnOnce(EngineError) -> Failure + '_ {
    move |error| match &error {
        EngineError::Api { status: 404, message } if !names_a_missing_container(message) => {
            Failure::wire(ErrorCode::InvalidRequest, format!("the engine refused: {message}"))
        }
        _ if error.is_not_found() => not_found(container_id),
        _ => error.into(),
    }
}

/// Docker: "No such container: x"; Podman: "no container with name or ID \"x\" found: no such container".
fn names_a_missing_container(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("no such container") || message.contains("no container with")
}
