//! The one reconnection backoff: exponential with full jitter, for everything in Rivet
//! that reconnects (the runner to the orchestrator, a replica to Redis pub/sub).
//!
//! Full jitter (the "Exponential Backoff and Jitter" policy of the AWS architecture blog):
//! the n-th delay is drawn uniformly from `[0, min(max, min · 2ⁿ)]`. A fleet that lost its
//! server at the same moment spreads its retries over the whole window instead of coming
//! back in waves, and the ceiling bounds how long anyone waits. This module only computes
//! delays; the callers sleep.

use std::time::Duration;

/// Exponential reconnection delays with full jitter, from `min` up to a ceiling of `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    /// Delays whose ceiling starts at `min` and doubles up to `max` (at least `min`).
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff::with_rng(min, max, fastrand::Rng::new())
    }

    /// The same, drawing from `rng` (a seeded one makes the delays repeatable).
    pub fn with_rng(min: Duration, max: Duration, rng: fastrand::Rng) -> Backoff {
        Backoff { min, max: max.max(min), failures: 0, rng }
    }

    /// The ceiling of the next delay: `min · 2ⁿ` after n failures, at most `max`.
    pub fn ceiling(&self) -> Duration {
        // 2³¹ · 1 ns is already past any sensible `max`; the shift cannot overflow.
        self.min.saturating_mul(1 << self.failures.min(31)).min(self.max)
    }

    /// The delay before the next attempt, after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        ceiling.mul_f64(self.rng.f64())
    }

    /// A success: the next delay starts from `min` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    #[test]
    fn the_ceiling_doubles_from_min_to_max_and_resets() {
        let mut backoff = Backoff::with_rng(MIN, MAX, fastrand::Rng::with_seed(7));
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            ceilings.push(backoff.ceiling());
            backoff.next_delay();
        }
        let millis: Vec<u128> = ceilings.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]);
        backoff.reset();
        assert_eq!(backoff.ceiling(), MIN);
    }

    #[test]
    fn delays_are_spread_over_the_whole_window() {
        // Full jitter, not "equal jitter": delays fall anywhere in [0, ceiling], so about
        // half of them are below half the ceiling.
        let mut backoff = Backoff::with_rng(MIN, MAX, fastrand::Rng::with_seed(42));
        for _ in 0..6 {
            backoff.next_delay();
        }
        assert_eq!(backoff.ceiling(), MAX);
        let delays: Vec<Duration> = (0..1_000).map(|_| backoff.next_delay()).collect();
        assert!(delays.iter().all(|delay| *delay <= MAX), "a delay above the ceiling");
        let low = delays.iter().filter(|delay| **delay < MAX / 2).count();
        assert!((400..=600).contains(&low), "{low} of 1000 delays below half the ceiling");
        assert!(delays.iter().any(|delay| *delay < MAX / 10), "no delay near zero");
    }

    #[test]
    fn a_max_below_min_is_min() {
        let mut backoff = Backoff::new(MIN, Duration::ZERO);
        assert!(backoff.next_delay() <= MIN);
        assert_eq!(backoff.ceiling(), MIN);
    }
}
