//! The deadline of one Lua evaluation, shared between the count hook and the Rust
//! functions that do long work on the script's behalf.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A cheap, cloneable deadline. [`Clock::arm`] starts a new budget from now.
#[derive(Debug, Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base: Instant,
    budget: Duration,
    /// Nanoseconds after `base` at which the budget runs out; `u64::MAX` when unarmed.
    deadline: AtomicU64,
}

impl Clock {
    pub(crate) fn new(budget: Duration) -> Self {
        let clock =
            Clock { inner: Arc::new(Inner { base: Instant::now(), budget, deadline: AtomicU64::new(u64::MAX) }) };
        clock.arm();
        clock
    }

    /// Starts a new budget, from now.
    pub fn arm(&self) {
        let deadline = self.inner.base.elapsed().saturating_add(self.inner.budget);
        let nanos = u64::try_from(deadline.as_nanos()).unwrap_or(u64::MAX);
        self.inner.deadline.store(nanos, Ordering::Relaxed);
    }

    /// Lifts the deadline, e.g. while a script waits on the host for a long process.
    pub fn disarm(&self) {
        self.inner.deadline.store(u64::MAX, Ordering::Relaxed);
    }

    /// Whether the budget has run out.
    pub fn expired(&self) -> bool {
        let now = u64::try_from(self.inner.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        now > self.inner.deadline.load(Ordering::Relaxed)
    }

    /// The budget each [`Clock::arm`] grants.
    pub fn budget(&self) -> Duration {
        self.inner.budget
    }
}
