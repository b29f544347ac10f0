//! The real clock: core instants are milliseconds since the clock was made.
//!
//! The core never reads time itself; the driver asks [`SmolClock::now`] and
//! hands the result in, and sleeps with [`SmolClock::sleep_until`] until the
//! session's next deadline. Both sides use the same origin, a
//! `std::time::Instant` taken at creation, so a deadline in core milliseconds
//! maps back onto the monotonic clock exactly.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use cropscode_core::{Clock, Instant};
use smol::Timer;

/// The monotonic clock and timers of the smol shell.
#[derive(Debug, Clone, Copy)]
pub struct SmolClock {
    origin: std::time::Instant,
}

impl SmolClock {
    /// A clock whose origin (core `Instant::ZERO`) is now.
    pub fn new() -> Self {
        SmolClock { origin: std::time::Instant::now() }
    }

    /// The `std` instant a core instant stands for; `None` if it is too far
    /// in the future to represent.
    pub fn to_std(&self, instant: Instant) -> Option<std::time::Instant> {
        self.origin.checked_add(Duration::from_millis(instant.as_millis()))
    }
}

impl Default for SmolClock {
    fn default() -> Self {
        SmolClock::new()
    }
}

impl Clock for SmolClock {
    type Sleep<'a> = Sleep;

    fn now(&self) -> Instant {
        // Whole milliseconds, rounded down: a timer set for `deadline` fires
        // at or after it, so `now()` then never reads earlier than `deadline`.
        Instant::from_millis(u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Sleep { timer: self.to_std(deadline).map_or_else(Timer::never, Timer::at) }
    }
}

/// The future of [`SmolClock::sleep_until`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    timer: Timer,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.timer).poll(cx).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeping_until_a_deadline_reaches_it() {
        let clock = SmolClock::new();
        let deadline = clock.now() + Duration::from_millis(30);
        smol::block_on(clock.sleep_until(deadline));
        assert!(clock.now() >= deadline);
    }

    #[test]
    fn past_deadlines_complete_at_once_and_far_ones_never() {
        let clock = SmolClock::new();
        std::thread::sleep(Duration::from_millis(5));
        smol::block_on(clock.sleep_until(Instant::ZERO));
        let far = clock.sleep_until(Instant::from_millis(u64::MAX));
        let quick = async {
            Timer::after(Duration::from_millis(20)).await;
            true
        };
        let far = async {
            far.await;
            false
        };
        assert!(smol::block_on(futures_lite::future::or(far, quick)), "a far deadline must not fire");
        assert!(clock.now() >= Instant::from_millis(5));
    }
}
