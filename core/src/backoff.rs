//! Reconnect backoff: a plain `Iterator<Item = Duration>`.
//!
//! The schedule doubles from [`BackoffConfig::initial`] up to
//! [`BackoffConfig::max`] — 1, 2, 4, 8, 16, 30, 30, … seconds by default —
//! and each delay is jittered down by up to [`BackoffConfig::jitter`] of
//! itself: `1.0` is "full jitter" (uniform in `[0, base]`), `0.0` is the exact
//! schedule. The jitter comes from a small seedable PRNG, so a test that fixes
//! the seed sees the same delays every run.
//!
//! The backoff only computes delays; the caller sleeps. When to [`Backoff::reset`]
//! is the session's decision (after a connection has stayed registered for a
//! while), and an auth failure jumps straight to the cap ([`Backoff::jump_to_max`]).

use core::time::Duration;

/// How the reconnect delays grow.
///
/// Built like `backon`'s builders:
///
/// ```
/// use core::time::Duration;
/// use cropscode_core::backoff::BackoffConfig;
///
/// let delays: Vec<_> = BackoffConfig::new().with_jitter(0.0).build().take(7).collect();
/// let secs: Vec<u64> = delays.iter().map(Duration::as_secs).collect();
/// assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// First delay (1 s).
    pub initial: Duration,
    /// Cap on every delay (30 s).
    pub max: Duration,
    /// Growth factor between steps (2); values below 1 count as 1.
    pub multiplier: u32,
    /// Fraction of each delay that is randomised, in `[0, 1]` (1.0 = full jitter).
    /// Out-of-range values are clamped; NaN counts as 0.
    pub jitter: f32,
    /// Seed of the jitter PRNG. Shells seed it from something that differs
    /// between workers (e.g. the clock at startup) so a fleet does not retry in step.
    pub seed: u64,
}

impl BackoffConfig {
    /// The defaults: 1 s doubling to 30 s, full jitter, seed 0.
    pub const DEFAULT: BackoffConfig = BackoffConfig {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(30),
        multiplier: 2,
        jitter: 1.0,
        seed: 0,
    };

    /// Same as [`BackoffConfig::DEFAULT`].
    pub const fn new() -> Self {
        Self::DEFAULT
    }

    /// Sets the first delay.
    pub const fn with_initial(mut self, initial: Duration) -> Self {
        self.initial = initial;
        self
    }

    /// Sets the cap.
    pub const fn with_max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Sets the growth factor.
    pub const fn with_multiplier(mut self, multiplier: u32) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Sets the jitter fraction (`0.0` exact … `1.0` full jitter).
    pub const fn with_jitter(mut self, jitter: f32) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the PRNG seed.
    pub const fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The backoff this configuration describes.
    pub fn build(self) -> Backoff {
        Backoff::new(self)
    }

    fn jitter_fraction(&self) -> f64 {
        let j = f64::from(self.jitter);
        if j.is_nan() { 0.0 } else { j.clamp(0.0, 1.0) }
    }
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// An endless sequence of reconnect delays; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    /// Undithered delay of the next step.
    base: Duration,
    /// Delays handed out since the last reset.
    attempt: u32,
    rng: SplitMix64,
}

impl Backoff {
    /// A fresh schedule.
    pub fn new(config: BackoffConfig) -> Self {
        Backoff { config, base: config.initial.min(config.max), attempt: 0, rng: SplitMix64(config.seed) }
    }

    /// The configuration.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// Delays handed out since the last [`reset`](Backoff::reset) (the next delay is attempt `attempt() + 1`).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The next delay (jittered), advancing the schedule.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.base;
        self.advance();
        self.jittered(base)
    }

    /// Moves the schedule to the cap and returns the cap, unjittered: an auth
    /// failure needs an operator, so it is never retried sooner than the cap.
    /// Later [`next_delay`](Backoff::next_delay)s stay at the (jittered) cap until a reset.
    pub fn jump_to_max(&mut self) -> Duration {
        self.base = self.config.max;
        self.attempt = self.attempt.saturating_add(1);
        self.config.max
    }

    /// Starts the schedule over from [`BackoffConfig::initial`].
    pub fn reset(&mut self) {
        self.base = self.config.initial.min(self.config.max);
        self.attempt = 0;
    }

    fn advance(&mut self) {
        self.attempt = self.attempt.saturating_add(1);
        let factor = self.config.multiplier.max(1);
        self.base = self.base.checked_mul(factor).unwrap_or(self.config.max).min(self.config.max);
    }

    fn jittered(&mut self, base: Duration) -> Duration {
        let fraction = self.config.jitter_fraction();
        if fraction == 0.0 {
            return base;
        }
        // Millisecond resolution is all the session's clock has.
        let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
        // `as` saturates for floats; the product is within [0, base_ms].
        let span = (base_ms as f64 * fraction) as u64;
        let cut = match span.checked_add(1) {
            Some(n) => self.rng.next_u64() % n,
            None => self.rng.next_u64(),
        };
        Duration::from_millis(base_ms - cut.min(base_ms))
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    /// Never `None`: reconnecting never gives up.
    fn next(&mut self) -> Option<Duration> {
        Some(self.next_delay())
    }
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough to spread retries.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn secs(b: Backoff, n: usize) -> Vec<u64> {
        b.take(n).map(|d| d.as_secs()).collect()
    }

    #[test]
    fn default_schedule_without_jitter() {
        let b = BackoffConfig::new().with_jitter(0.0).build();
        assert_eq!(secs(b, 9), [1, 2, 4, 8, 16, 30, 30, 30, 30]);
    }

    #[test]
    fn custom_schedule_and_degenerate_configs() {
        let b = BackoffConfig::new()
            .with_initial(Duration::from_millis(500))
            .with_max(Duration::from_secs(5))
            .with_multiplier(3)
            .with_jitter(0.0)
            .build();
        let ms: Vec<u128> = b.take(5).map(|d| d.as_millis()).collect();
        assert_eq!(ms, [500, 1500, 4500, 5000, 5000]);
        // Multiplier 0 does not collapse to zero delays; initial above max is capped.
        let b = BackoffConfig::new().with_multiplier(0).with_jitter(0.0).build();
        assert_eq!(secs(b, 3), [1, 1, 1]);
        let b = BackoffConfig::new().with_initial(Duration::from_secs(99)).with_jitter(0.0).build();
        assert_eq!(secs(b, 2), [30, 30]);
        // A huge max does not overflow.
        let mut b = BackoffConfig::new().with_max(Duration::MAX).with_jitter(0.0).build();
        for _ in 0..200 {
            b.next_delay();
        }
        assert_eq!(b.attempt(), 200);
    }

    #[test]
    fn full_jitter_stays_within_base_and_is_seeded() {
        for seed in 0..64 {
            let exact = BackoffConfig::new().with_jitter(0.0).build();
            let jittered = BackoffConfig::new().with_seed(seed).build();
            for (e, j) in exact.zip(jittered).take(12) {
                assert!(j <= e, "seed {seed}: {j:?} > {e:?}");
            }
            let a: Vec<_> = BackoffConfig::new().with_seed(seed).build().take(12).collect();
            let b: Vec<_> = BackoffConfig::new().with_seed(seed).build().take(12).collect();
            assert_eq!(a, b, "same seed, same delays");
        }
        let a: Vec<_> = BackoffConfig::new().with_seed(1).build().take(12).collect();
        let b: Vec<_> = BackoffConfig::new().with_seed(2).build().take(12).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn partial_jitter_bounds() {
        for seed in 0..64 {
            let b = BackoffConfig::new().with_jitter(0.25).with_seed(seed).build();
            let exact = BackoffConfig::new().with_jitter(0.0).build();
            for (j, e) in b.zip(exact).take(10) {
                assert!(j <= e && j >= e.mul_f64(0.75), "{j:?} not in [0.75, 1] x {e:?}");
            }
        }
        // Out-of-range jitter is clamped; NaN is exact.
        let b = BackoffConfig::new().with_jitter(f32::NAN).build();
        assert_eq!(secs(b, 3), [1, 2, 4]);
        let over: Vec<_> = BackoffConfig::new().with_jitter(7.0).with_seed(3).build().take(5).collect();
        let full: Vec<_> = BackoffConfig::new().with_jitter(1.0).with_seed(3).build().take(5).collect();
        assert_eq!(over, full);
    }

    #[test]
    fn full_jitter_covers_the_range() {
        // Uniform in [0, base]: over many seeds both halves of the range occur.
        let (mut low, mut high) = (0, 0);
        for seed in 0..200 {
            let d = BackoffConfig::new().with_seed(seed).with_initial(Duration::from_secs(30)).build().next_delay();
            if d < Duration::from_secs(15) {
                low += 1;
            } else {
                high += 1;
            }
        }
        assert!(low > 50 && high > 50, "low {low} high {high}");
    }

    #[test]
    fn jump_to_max_and_reset() {
        let mut b = BackoffConfig::new().with_jitter(0.0).build();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
        assert_eq!(b.jump_to_max(), Duration::from_secs(30));
        assert_eq!(b.attempt(), 2);
        assert_eq!(b.next_delay(), Duration::from_secs(30));
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(secs(b, 3), [1, 2, 4]);
        // jump_to_max is exact even with full jitter.
        let mut b = BackoffConfig::new().with_seed(9).build();
        assert_eq!(b.jump_to_max(), Duration::from_secs(30));
    }
}
