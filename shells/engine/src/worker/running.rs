//! `containersRunning` for the heartbeat: exact, without asking the engine every heartbeat.
//!
//! The count is one label-filtered list of running containers (`cropscode.managed=true`,
//! `cropscode.worker=<id>`), taken:
//!
//! - after every command that starts, stops or removes a container;
//! - whenever the engine's event stream (`GET /events`, filtered to this worker's
//!   containers by label) reports a container starting, dying, being removed, paused, …
//!   — which covers containers that exit on their own or are stopped outside the worker;
//! - 300 ms after such an event once more (Docker reports `die` a moment before its list
//!   shows the container stopped);
//! - every `resync_interval` (60 s) as a safety net, and when the stream is (re)opened.
//!
//! A heartbeat only reads the shared atomic. While the engine is unreachable the last
//! count stays; the follower retries with backoff (1 s doubling to 30 s), logs the engine's
//! return once, and recounts. A new worker id (first registration) re-subscribes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cropscode_core::backoff::BackoffConfig;
use futures_lite::future;

use cropscode_engine_api::{EngineError, EngineEvent, EventFilter, ListContainers};

use super::naming::owned_filters;
use super::selection::Shared;

/// Container events after which the count may have changed. Docker says `destroy`, Podman
/// `remove` and also `died`; exec, attach and archive events do not change it.
const COUNTED_ACTIONS: &[&str] =
    &["start", "restart", "die", "died", "stop", "kill", "oom", "destroy", "remove", "pause", "unpause", "cleanup"];

/// Retries of the event stream: 1 s doubling to 30 s, exact.
const RETRY: BackoffConfig = BackoffConfig::new().with_jitter(0.0);
/// A second count this long after an event, for engines whose list lags their events.
const SETTLE: Duration = Duration::from_millis(300);

/// Counts the running managed containers and stores the count.
pub(crate) async fn refresh(shared: &Shared) -> Result<u32, EngineError> {
    let Some(me) = shared.worker_id() else {
        // Nothing can be this worker's before it has an id.
        shared.running.store(0, Ordering::Relaxed);
        return Ok(0);
    };
    let client = match shared.client().await {
        Ok(client) => client,
        Err(_) => return Err(EngineError::Connection("no container engine answers".into())),
    };
    let running = ListContainers { all: false, labels: owned_filters(&me, None), names: vec![] };
    let count = client.list_containers(&running).await?.len();
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    let before = shared.running.swap(count, Ordering::Relaxed);
    if before != count {
        tracing::debug!(before, count, "running managed containers");
    }
    Ok(count)
}

/// Recounts after a lifecycle command; a failure is only logged (the command's own outcome
/// is what the orchestrator sees, and the follower recounts later).
pub(crate) async fn refresh_quietly(shared: &Shared) {
    if let Err(error) = refresh(shared).await {
        tracing::debug!(%error, "could not recount running containers");
    }
}

enum Wake {
    Event(Option<Result<EngineEvent, EngineError>>),
    IdentityChanged,
    Timer,
}

/// Follows the engine's events for as long as the worker engine lives.
pub(crate) async fn follow(shared: Arc<Shared>, resync: Duration) {
    let identity_changes = shared.identity_changes();
    let mut retry = RETRY.build();
    loop {
        let Some(me) = shared.worker_id() else {
            let _ = identity_changes.recv().await;
            continue;
        };
        let opened = async {
            let client = shared.client().await.map_err(|_| EngineError::Connection("no engine".into()))?;
            let filter = EventFilter { types: vec!["container".into()], labels: owned_filters(&me, None) };
            let events = client.events(&filter).await?;
            // Counted after subscribing, so nothing between the two is missed.
            refresh(&shared).await?;
            Ok::<_, EngineError>(events)
        };
        let mut events = match opened.await {
            Ok(events) => {
                shared.mark_up();
                retry.reset();
                events
            }
            Err(error) => {
                if error.is_unavailable() {
                    shared.mark_down(&error);
                } else {
                    tracing::debug!(%error, "cannot follow the engine's events");
                }
                let changed = async {
                    let _ = identity_changes.recv().await;
                };
                let delay = retry.next_delay();
                let waited = async {
                    smol::Timer::after(delay).await;
                };
                future::or(changed, waited).await;
                continue;
            }
        };
        let mut resync_at = Instant::now() + resync;
        let mut settle_at: Option<Instant> = None;
        loop {
            let timer_at = settle_at.map_or(resync_at, |settle| settle.min(resync_at));
            let wake = future::or(
                async { Wake::Event(events.next().await) },
                future::or(
                    async {
                        let _ = identity_changes.recv().await;
                        Wake::IdentityChanged
                    },
                    async {
                        smol::Timer::at(timer_at).await;
                        Wake::Timer
                    },
                ),
            )
            .await;
            let recount = match wake {
                Wake::Event(Some(Ok(event))) => {
                    if event.action == "start" {
                        shared.container_started(&event.actor.id);
                    }
                    let counted = COUNTED_ACTIONS.contains(&event.action.as_str());
                    if counted {
                        // Docker reports `die` a moment before its container list shows
                        // the container stopped: count now, and once more shortly after.
                        settle_at = Some(Instant::now() + SETTLE);
                    }
                    counted
                }
                Wake::Event(Some(Err(error))) => {
                    tracing::debug!(%error, "the engine's event stream broke");
                    break;
                }
                Wake::Event(None) => {
                    tracing::debug!("the engine closed its event stream");
                    break;
                }
                Wake::IdentityChanged => break,
                Wake::Timer => {
                    let now = Instant::now();
                    if settle_at.is_some_and(|settle| settle <= now) {
                        settle_at = None;
                    }
                    if resync_at <= now {
                        resync_at = now + resync;
                    }
                    true
                }
            };
            if recount && let Err(error) = refresh(&shared).await {
                tracing::debug!(%error, "could not recount running containers");
                if error.is_unavailable() {
                    break;
                }
            }
        }
    }
}
