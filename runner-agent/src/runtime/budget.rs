//! The Lua time budget of a stage: the time spent running Lua code, not the time spent
//! waiting for processes or images.
//!
//! rivet-core's sandbox clock grants a fresh budget every time it is armed, which suits one
//! evaluation of a definition. A stage alternates between Lua and host waits many times, so
//! the runner keeps its own account: [`Budget::suspend`] banks the time used so far before a
//! wait and [`Budget::resume`] sets the deadline to what is left. A count hook of the same
//! shape as the sandbox's enforces it; it replaces the sandbox's hook, and the sandbox clock
//! (which the pattern functions check) is armed and disarmed alongside as a backstop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mlua::{HookTriggers, Lua, VmState};
use rivet_core::sandbox::{self, TIME_BUDGET_EXCEEDED};

/// How many VM instructions run between two deadline checks.
const HOOK_PERIOD: u32 = 1_000;

/// Nanoseconds marking "not running Lua now".
const SUSPENDED: u64 = u64::MAX;

/// A cheap, cloneable, cumulative Lua time budget.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base: Instant,
    total: Duration,
    /// Nanoseconds of budget left when the current segment started.
    remaining: AtomicU64,
    /// Nanoseconds after `base` when the current segment started.
    segment_start: AtomicU64,
    /// Nanoseconds after `base` when the budget runs out; [`SUSPENDED`] while Lua waits.
    deadline: AtomicU64,
    /// Set when the job's thread is abandoned: the budget is spent for good.
    killed: AtomicBool,
}

impl Budget {
    pub(crate) fn new(total: Duration) -> Self {
        Budget {
            inner: Arc::new(Inner {
                base: Instant::now(),
                total,
                remaining: AtomicU64::new(nanos(total)),
                segment_start: AtomicU64::new(0),
                deadline: AtomicU64::new(SUSPENDED),
                killed: AtomicBool::new(false),
            }),
        }
    }

    /// Installs the budget's hook on `lua`, replacing the sandbox's.
    pub(crate) fn install(&self, lua: &Lua) -> mlua::Result<()> {
        install_hook(lua, self.clone(), HOOK_PERIOD)
    }

    /// Grants the whole budget again (a new stage) and starts counting.
    pub(crate) fn start(&self, lua: &Lua) -> mlua::Result<()> {
        self.inner.remaining.store(nanos(self.inner.total), Ordering::Relaxed);
        // The hook may have switched to every-instruction after the previous stage ran out.
        self.install(lua)?;
        self.resume(lua);
        Ok(())
    }

    /// Stops counting: Lua waits on the host.
    pub(crate) fn suspend(&self, lua: &Lua) {
        let deadline = self.inner.deadline.swap(SUSPENDED, Ordering::Relaxed);
        if deadline == SUSPENDED {
            return;
        }
        let used = self.now().saturating_sub(self.inner.segment_start.load(Ordering::Relaxed));
        let remaining = self.inner.remaining.load(Ordering::Relaxed).saturating_sub(used);
        self.inner.remaining.store(remaining, Ordering::Relaxed);
        sandbox::clock(lua).disarm();
    }

    /// Starts counting again with what is left of the budget.
    pub(crate) fn resume(&self, lua: &Lua) {
        let now = self.now();
        self.inner.segment_start.store(now, Ordering::Relaxed);
        let remaining = self.inner.remaining.load(Ordering::Relaxed);
        self.inner.deadline.store(now.saturating_add(remaining).min(SUSPENDED - 1), Ordering::Relaxed);
        sandbox::clock(lua).arm();
    }

    /// Suspends the budget until the returned guard is dropped.
    pub(crate) fn suspended(&self, lua: &Lua) -> Suspended {
        self.suspend(lua);
        Suspended { budget: self.clone(), lua: lua.clone() }
    }

    /// Spends the budget for good, whatever stage runs: a script whose thread was
    /// abandoned fails at its next instruction, should its stuck call ever return.
    pub(crate) fn kill(&self) {
        self.inner.killed.store(true, Ordering::Relaxed);
    }

    fn expired(&self) -> bool {
        self.inner.killed.load(Ordering::Relaxed) || self.now() > self.inner.deadline.load(Ordering::Relaxed)
    }

    fn now(&self) -> u64 {
        nanos(self.inner.base.elapsed())
    }
}

/// Resumes the budget when dropped, also when the waiting future is dropped.
pub(crate) struct Suspended {
    budget: Budget,
    lua: Lua,
}

impl Drop for Suspended {
    fn drop(&mut self) {
        self.budget.resume(&self.lua);
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(SUSPENDED - 1)
}

/// Once the budget has run out the hook re-installs itself to fire on every instruction,
/// so a script that catches the error with `pcall` fails again at its next instruction.
fn install_hook(lua: &Lua, budget: Budget, period: u32) -> mlua::Result<()> {
    lua.set_global_hook(HookTriggers::new().every_nth_instruction(period), move |lua, debug| {
        if !budget.expired() {
            return Ok(VmState::Continue);
        }
        if period != 1 {
            install_hook(lua, budget.clone(), 1)?;
        }
        let source = debug.source();
        let place = match (source.short_src, debug.current_line()) {
            (Some(file), Some(line)) => format!("{file}:{line}: "),
            _ => String::new(),
        };
        Err(mlua::Error::runtime(format!("{place}{TIME_BUDGET_EXCEEDED} of {:?}", budget.inner.total)))
    })
}
