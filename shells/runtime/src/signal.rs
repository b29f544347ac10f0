//! Shutdown on SIGINT or SIGTERM (Ctrl-C on Windows).
//!
//! [`shutdown_signal`] installs the handlers at once — a signal that arrives
//! before the future is first polled is not lost — and returns a future that
//! resolves on the first one. It goes to [`Agent::run`](crate::Agent::run) as its `shutdown`
//! argument: the session then sends a normal close and returns. Dropping the
//! future restores the default handlers, so a second Ctrl-C during a slow
//! shutdown still ends the process.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_signal::{Signal, Signals};
use futures_lite::Stream;

#[cfg(unix)]
const SHUTDOWN_SIGNALS: [Signal; 2] = [Signal::Int, Signal::Term];
// Windows only delivers Ctrl-C (as SIGINT) through async-signal; a service
// stop would need the service control API, which the agent does not use yet.
#[cfg(windows)]
const SHUTDOWN_SIGNALS: [Signal; 1] = [Signal::Int];

/// Installs the shutdown handlers and returns a future that resolves on the
/// first SIGINT or SIGTERM.
///
/// ```no_run
/// # fn main() -> std::io::Result<()> {
/// let shutdown = cropscode_runtime::shutdown_signal()?;
/// smol::block_on(shutdown);
/// # Ok(()) }
/// ```
pub fn shutdown_signal() -> io::Result<ShutdownSignal> {
    Ok(ShutdownSignal { signals: Signals::new(SHUTDOWN_SIGNALS)?, broken: false })
}

/// The future of [`shutdown_signal`].
#[must_use = "futures do nothing unless polled"]
pub struct ShutdownSignal {
    signals: Signals,
    broken: bool,
}

impl std::fmt::Debug for ShutdownSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownSignal").finish_non_exhaustive()
    }
}

impl Future for ShutdownSignal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.broken {
            return Poll::Pending;
        }
        match Pin::new(&mut self.signals).poll_next(cx) {
            Poll::Ready(Some(Ok(signal))) => {
                tracing::info!(?signal, "shutting down");
                Poll::Ready(())
            }
            // The self-pipe failed (it does not recover): no signal can be
            // seen any more. Say so once instead of spinning on the error.
            Poll::Ready(Some(Err(error))) => {
                tracing::warn!(%error, "cannot watch for shutdown signals any more");
                self.broken = true;
                Poll::Pending
            }
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}
