//! A container this worker owns, and how the streams reach one.
//!
//! [`streams`](crate::streams) needs three things of the worker's engine: the serving
//! engine's client, a `containerId` resolved to a container this worker owns, and the
//! engine-side user check of the security floor. [`OwnedContainers`] is that much;
//! [`WorkerEngine`](crate::WorkerEngine) implements it (`worker/ownership.rs`), so the
//! streams use the worker without importing it.

use cropscode_core::protocol::ErrorCode;
use cropscode_engine_api::{ContainerInspect, EngineClient};

use crate::outcome::{Failure, Outcome};

/// A container this worker owns, as inspected when the command started.
#[derive(Debug, Clone)]
pub(crate) struct Owned {
    /// Full id.
    pub id: String,
    pub inspect: ContainerInspect,
}

/// The worker's containers, as the streams reach them.
pub(crate) trait OwnedContainers {
    /// The serving engine's client, or `engine_unavailable`.
    async fn serving_client(&self) -> Outcome<EngineClient>;

    /// The container `container_id` names, if this worker owns it (and `tenant` does, when
    /// given); otherwise `not_found`.
    async fn resolve(&self, client: &EngineClient, container_id: &str, tenant: Option<&str>) -> Outcome<Owned>;

    /// Under a `restricted` floor, refuses a process the request starts without naming a
    /// user (`requested`) when the user it would run as (`effective`) is root or not a
    /// numeric uid.
    fn check_user(&self, requested: Option<&str>, effective: &str) -> Outcome<()>;

    /// The serving engine's client and the caller's container, which must be running
    /// (`conflict` otherwise): what a terminal, a display or a background exec needs.
    async fn running_container(&self, container_id: &str, tenant: Option<&str>) -> Outcome<(EngineClient, Owned)> {
        let client = self.serving_client().await?;
        let owned = self.resolve(&client, container_id, tenant).await?;
        if !owned.inspect.state.running {
            return Err(Failure::wire(
                ErrorCode::Conflict,
                format!("container `{container_id}` is not running; start it first"),
            ));
        }
        Ok((client, owned))
    }
}
