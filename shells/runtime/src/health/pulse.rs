//! The loop pulse: proof that the agent's loop turns.
//!
//! [`cropscode_core::run`] asks its [`Clock`] for `now()` on every turn (after each
//! wake, before each wait) and arms `sleep_until` for the session's next deadline.
//! [`PulseClock`] is the runtime's clock with one addition: each of those calls
//! stores the instant in a shared atomic ([`Pulse::mark`]). No timer of its own
//! feeds it, so a loop stuck in a blocking call, a deadlock or a runaway await
//! stops the pulse, and whoever reads it from another thread (the health listener,
//! the systemd watchdog) sees it go stale.
//!
//! How long is too long: the session always has a deadline, and the loop wakes
//! for it at the latest:
//!
//! - registered: a ping goes out after `ping_interval` (≤ `liveness_timeout / 3`)
//!   without traffic, then the liveness deadline follows `liveness_timeout` after
//!   the last frame, so the longest gap is `2 × liveness_timeout / 3`;
//! - registering: `register_timeout`; connecting: the connector's timeout;
//! - disconnected: the backoff delay, at most `backoff.max`.
//!
//! [`stale_after`] is the largest of these plus [`PULSE_MARGIN`]: 30 s + 10 s = 40 s
//! with the defaults.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cropscode_core::{Clock, Instant, SessionConfig};

use crate::SmolClock;

/// Slack on top of the longest expected wait: a busy machine, a slow heartbeat probe.
pub const PULSE_MARGIN: Duration = Duration::from_secs(10);

/// The longest the loop may go without a turn and still count as alive; see the
/// [module docs](self).
pub fn stale_after(session: &SessionConfig, connect_timeout: Duration) -> Duration {
    let registered = session.liveness_timeout.saturating_mul(2) / 3;
    registered.max(session.register_timeout).max(connect_timeout).max(session.backoff.max) + PULSE_MARGIN
}

/// The last turn of the loop, readable from any thread.
#[derive(Debug)]
pub struct Pulse {
    /// The last mark's milliseconds plus one; 0 before the first.
    last: AtomicU64,
    stale_after: Duration,
}

impl Pulse {
    /// A pulse that goes stale `stale_after` after its last mark.
    pub fn new(stale_after: Duration) -> Pulse {
        Pulse { last: AtomicU64::new(0), stale_after }
    }

    /// Records a turn at `now` (never moves backwards).
    pub fn mark(&self, now: Instant) {
        self.last.fetch_max(now.as_millis().saturating_add(1), Ordering::Relaxed);
    }

    /// The last turn, if any.
    pub fn last(&self) -> Option<Instant> {
        match self.last.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Instant::from_millis(n - 1)),
        }
    }

    /// How long a pulse may be silent and still be fresh.
    pub fn stale_after(&self) -> Duration {
        self.stale_after
    }

    /// Time since the last turn (`None` before the first).
    pub fn age(&self, now: Instant) -> Option<Duration> {
        self.last().map(|last| Duration::from_millis(now.as_millis().saturating_sub(last.as_millis())))
    }

    /// Whether the loop turned within `stale_after` of `now`.
    pub fn is_fresh(&self, now: Instant) -> bool {
        self.age(now).is_some_and(|age| age <= self.stale_after)
    }
}

/// [`SmolClock`] that marks the [`Pulse`] whenever the loop reads the time or
/// arms its timer.
#[derive(Debug, Clone)]
pub struct PulseClock {
    clock: SmolClock,
    pulse: Arc<Pulse>,
}

impl PulseClock {
    /// `clock`, marking `pulse`.
    pub fn new(clock: SmolClock, pulse: Arc<Pulse>) -> PulseClock {
        PulseClock { clock, pulse }
    }
}

impl Clock for PulseClock {
    type Sleep<'a> = crate::clock::Sleep;

    fn now(&self) -> Instant {
        let now = self.clock.now();
        self.pulse.mark(now);
        now
    }

    fn sleep_until(&self, deadline: Instant) -> crate::clock::Sleep {
        self.pulse.mark(self.clock.now());
        self.clock.sleep_until(deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_follows_the_session() {
        let defaults = SessionConfig::default();
        assert_eq!(stale_after(&defaults, Duration::from_secs(10)), Duration::from_secs(40));
        let long = SessionConfig { liveness_timeout: Duration::from_secs(90), ..SessionConfig::default() };
        assert_eq!(stale_after(&long, Duration::from_secs(10)), Duration::from_secs(70));
    }

    #[test]
    fn a_pulse_is_fresh_only_within_its_window() {
        let pulse = Pulse::new(Duration::from_secs(40));
        assert!(!pulse.is_fresh(Instant::from_millis(0)), "no turn yet");
        pulse.mark(Instant::from_millis(1_000));
        assert!(pulse.is_fresh(Instant::from_millis(41_000)));
        assert!(!pulse.is_fresh(Instant::from_millis(41_001)));
        pulse.mark(Instant::from_millis(500));
        assert_eq!(pulse.last(), Some(Instant::from_millis(1_000)), "never backwards");
    }

    #[test]
    fn the_clock_marks_on_every_read() {
        let pulse = Arc::new(Pulse::new(Duration::from_secs(1)));
        let clock = PulseClock::new(SmolClock::new(), pulse.clone());
        assert!(pulse.last().is_none());
        let now = clock.now();
        assert_eq!(pulse.last(), Some(now));
    }
}
