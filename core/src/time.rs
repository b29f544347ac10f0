//! Monotonic time as the core sees it: a millisecond count handed in by the caller.
//!
//! The core never reads a clock. Shells map their own monotonic clock onto
//! [`Instant`] (milliseconds since an origin of their choosing), tests make
//! instants by hand and advance them as they please.
//!
//! Waiting is the caller's too: [`with_timeout`] races any future against a
//! sleep the caller makes (from its [`Clock`](crate::Clock) or its runtime),
//! so a timeout needs no timer of the core's own.
//!
//! ```text
//!  with_timeout(make_sleep, future) ──poll──► future ready? ──► Some(output)
//!                                      │ not ready: make_sleep() once, poll it
//!                                      └─────────────────────► sleep done ──► None
//! ```

use core::future::{Future, poll_fn};
use core::ops::{Add, Sub};
use core::pin::pin;
use core::task::Poll;
use core::time::Duration;

/// A point on the caller's monotonic clock, in milliseconds since its origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The origin of the clock.
    pub const ZERO: Instant = Instant(0);

    /// Later than every deadline: what [`Output::Timeout`](crate::session::Output::Timeout)
    /// carries when the session has none. Adding to it stays at it.
    pub const NEVER: Instant = Instant(u64::MAX);

    /// An instant `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms)
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        let ms = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ms))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

/// Runs `future` until it completes (`Some` of its output) or until the sleep
/// made by `make_sleep` completes first (`None`).
///
/// The sleep is made lazily, only when `future` is not ready at its first
/// poll, so the common case (a send that completes at once) arms no timer.
/// Runtime-agnostic: any `Future<Output = ()>` is a sleep, e.g.
/// `|| clock.sleep_until(clock.now() + timeout)` with a [`Clock`](crate::Clock).
///
/// ```
/// use core::future::{pending, ready, Ready};
/// use cropscode_core::time::with_timeout;
/// use futures_lite::future::block_on;
///
/// // Ready at once: the sleep is never made.
/// let at_once = with_timeout(|| -> Ready<()> { unreachable!("armed a timer") }, ready(7));
/// assert_eq!(block_on(at_once), Some(7));
///
/// // Never ready: the sleep (here one that is over at once) ends it.
/// let stuck = with_timeout(|| ready(()), pending::<u8>());
/// assert_eq!(block_on(stuck), None);
/// ```
pub async fn with_timeout<T, S>(make_sleep: impl FnOnce() -> S, future: impl Future<Output = T>) -> Option<T>
where
    S: Future<Output = ()>,
{
    let mut future = pin!(future);
    let mut make_sleep = Some(make_sleep);
    let mut sleep = pin!(None::<S>);
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if let Some(make) = make_sleep.take() {
            sleep.set(Some(make()));
        }
        match sleep.as_mut().as_pin_mut().map(|sleep| sleep.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(None),
            _ => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(1_000);
        assert_eq!((t + Duration::from_secs(2)).as_millis(), 3_000);
        assert_eq!(Instant::ZERO - t, Duration::ZERO);
        assert_eq!(Instant::from_millis(u64::MAX) + Duration::from_secs(1), Instant::from_millis(u64::MAX));
    }
}
