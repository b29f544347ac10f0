//! Ending a terminal session's processes. The terminal's exec carries
//! `CROPSCODE_SESSION=<sessionId>` in its environment (see [`signals`](super::signals)).
//! Ending a terminal signals every process carrying it: `HUP` (a hang-up, as when a
//! terminal window closes), then `KILL` for whatever is still there after a grace
//! period. When the shell exits on its own, leftovers (background jobs) are reaped the
//! same way.

use std::time::{Duration, Instant};

use cropscode_core::protocol::ErrorCode;
use cropscode_engine_api::EngineClient;

use super::signals::{Marked, SESSION_MARKER, signal_marked};

/// How long processes get to exit after `HUP` before `KILL`.
const HANGUP_GRACE: Duration = Duration::from_secs(2);
const SIGHUP: u8 = 1;
const SIGKILL: u8 = 9;

/// The engine's handle on a terminal's process.
#[derive(Clone)]
pub(super) struct ExecHandle {
    pub client: EngineClient,
    pub container: String,
    pub exec_id: String,
    pub session_id: String,
    /// The user the shell runs as (`None`: the container's).
    pub user: Option<String>,
}

/// Ends a terminal: `HUP` to its processes, `KILL` to what is left after a grace period.
pub(super) async fn end(exec: ExecHandle) {
    let started = Instant::now();
    signal(&exec, SIGHUP).await;
    while started.elapsed() < HANGUP_GRACE {
        match exec.client.inspect_exec(&exec.exec_id).await {
            Ok(inspect) if inspect.running => smol::Timer::after(Duration::from_millis(50)).await,
            _ => break,
        };
    }
    reap(exec).await;
}

/// `KILL` to every process still carrying the session's marker.
pub(super) async fn reap(exec: ExecHandle) {
    let killed = signal(&exec, SIGKILL).await;
    if killed > 0 {
        tracing::info!(session = %exec.session_id, killed, "killed processes the terminal left behind");
    }
}

async fn signal(exec: &ExecHandle, signal: u8) -> u32 {
    let target = Marked {
        marker: SESSION_MARKER,
        value: &exec.session_id,
        user: exec.user.as_deref(),
        exec_id: Some(&exec.exec_id),
    };
    match signal_marked(&exec.client, &exec.container, &target, signal).await {
        Ok(count) => count,
        // The container is gone or stopped, and its processes with it.
        Err(error) if matches!(error.code(), ErrorCode::NotFound | ErrorCode::Conflict) => 0,
        Err(error) => {
            tracing::warn!(session = %exec.session_id, %error, "could not signal the terminal's processes");
            0
        }
    }
}
