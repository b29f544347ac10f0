//! The engine side of live streams and background execs.
//!
//! Core decides everything about a stream (channels, replay, windows,
//! fairness, timeouts: `cropscode_core::stream`); this module only holds the
//! byte pipes and talks to the engine:
//!
//! ```text
//!  core run ──poll_read/poll_write──► LiveStreams[channel] ──► Upgraded exec attach (terminal, TTY)
//!           ──close(channel)────────►   └─ closer task       └─► TCP to the container (display)
//!  WorkerEngine::execute ──► terminal.resize, container.exec.background{,.kill,.capture}
//! ```
//!
//! - [`live`]: the table of open streams by channel, and how each ends.
//! - [`terminal`]: an exec with a TTY, attached through the engine's upgraded
//!   connection; resized with the exec resize call; ended by signalling its
//!   processes in the container ([`session`], [`signals`]); its exit code from exec inspect.
//! - [`display`]: a TCP connection to the container's VNC port (the
//!   container's address on its network, else a published loopback port).
//! - [`background`] and [`spool`]: detached execs whose output the worker
//!   spools under `DATA_DIR`, read back from any offset, across restarts.
//!
//! Every stream ends exactly once, through [`LiveStreams::poll_read`]: on end
//! of output (the shell exited, the container stopped, the server closed), or
//! after [`LiveStreams::close`] finished ending it. The end of a terminal is
//! reported only once its leftover processes were ended too, so when the
//! orchestrator hears of it nothing the worker started is left running.

pub(crate) mod background;
mod display;
mod live;
mod relay;
mod session;
pub(crate) mod signals;
pub(crate) mod spool;
mod terminal;

use std::path::Path;

pub(crate) use background::BackgroundExecs;
pub(crate) use live::LiveStreams;

/// Everything of this module a [`WorkerEngine`](crate::WorkerEngine) holds: its live streams and its background execs.
#[derive(Clone)]
pub(crate) struct Streams {
    /// Terminals and display relays, by channel.
    pub live: LiveStreams,
    /// Background execs and their spools.
    pub background: BackgroundExecs,
}

impl Streams {
    /// Spools background execs under `data_dir/execs` (refused without a data dir).
    pub(crate) fn new(data_dir: Option<&Path>) -> Self {
        Streams {
            live: LiveStreams::default(),
            background: BackgroundExecs::new(data_dir, background::DEFAULT_SPOOL_BYTES),
        }
    }

    /// Ends every terminal and display (nothing left running) and stops copying background output.
    pub(crate) async fn shutdown(&self) {
        self.live.shutdown().await;
        self.background.shutdown().await;
    }
}
