//! Leases: the sweeper, through which any replica requeues (or marks lost) a job whose
//! lease expired, so nothing stays "running" after its runner vanished; and how a lease is
//! kept while its runner still runs the job, even when the coordinator lost it.
//!
//! The database is the truth of who runs what (`jobs.runner_id`, attempt and epoch); the
//! coordinator (Redis) only says who is alive, and may forget it: restarted without
//! persistence, flushed, failed over, or unreachable for longer than a lease. So:
//! - a heartbeat whose lease is gone re-establishes it when the database still has the job
//!   under that runner and assignment ([`renew`]);
//! - the sweeper reads the coordinator's data generation first on every sweep: while the
//!   coordinator cannot be reached it sweeps nothing, and after it lost its data, or after
//!   any failed sweep, it requeues nothing for one lease TTL (the grace), so that runners'
//!   heartbeats re-establish their leases first;
//! - a runner that connects again says which jobs it still runs: the jobs the database
//!   gives it that it does not list are requeued at once ([`requeue_forgotten`]), the
//!   ones it lists are kept.
//!
//! The same sweep ends jobs that ran past their timeout plus its grace (`timeouts`), so
//! nothing stays "running" forever behind a runner that heartbeats but never finishes.

use std::collections::HashSet;
use std::time::Duration;

use rivet_core::Assignment;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::error::Result;
use crate::domain::metrics::Requeue;
use crate::domain::orchestrator::Orchestrator;
use crate::domain::timeouts;

/// Runs the sweeper until `shutdown`. The first sweep waits one lease TTL, so runners of a
/// restarted orchestrator have time to reconnect and renew their leases.
pub async fn run(orchestrator: Orchestrator, shutdown: CancellationToken) {
    let ttl = orchestrator.config().lease_ttl();
    let period = (ttl / 3).max(Duration::from_millis(100));
    let mut sweeper = Sweeper::new(ttl);
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = tokio::time::sleep(ttl) => {}
    }
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(err) = sweeper.sweep(&orchestrator).await {
            sweeper.failed = true;
            tracing::warn!(error = %err, "lease sweep failed; no lease is swept until it succeeds, then none for one lease TTL");
        }
    }
}

/// What the sweeper remembers between sweeps.
#[derive(Debug)]
pub struct Sweeper {
    ttl: Duration,
    /// Assignments whose lease was missing on the previous sweep.
    suspects: HashSet<Assignment>,
    /// The coordinator's data generation at the previous sweep.
    generation: Option<String>,
    /// No job is requeued before this instant.
    grace_until: Option<Instant>,
    /// Whether the previous sweep failed (the coordinator or the database was unreachable).
    pub failed: bool,
}

impl Sweeper {
    /// A sweeper for leases of `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, suspects: HashSet::new(), generation: None, grace_until: None, failed: false }
    }

    /// Whether the sweeper is in a grace period now (it requeues nothing).
    pub fn in_grace(&self) -> bool {
        self.grace_until.is_some_and(|until| Instant::now() < until)
    }

    fn start_grace(&mut self) {
        self.grace_until = Some(Instant::now() + self.ttl);
        self.suspects.clear();
    }

    /// One sweep; returns how many jobs it requeued. A job is requeued only when its lease
    /// is missing on two sweeps in a row (a job claimed a moment ago may not have its lease
    /// granted yet), and never during a grace period.
    pub async fn sweep(&mut self, orchestrator: &Orchestrator) -> Result<usize> {
        // The coordinator first: when it cannot be reached, nothing is swept.
        let generation = orchestrator.coord().generation().await?;
        if self.generation.as_ref().is_some_and(|previous| *previous != generation) {
            tracing::warn!(
                grace_ms = self.ttl.as_millis() as u64,
                "the coordinator lost its data (restarted empty, flushed or failed over): no job is requeued until runners have had one lease TTL to re-establish their leases"
            );
            self.start_grace();
        } else if self.failed {
            tracing::info!(
                grace_ms = self.ttl.as_millis() as u64,
                "sweeping again after a failure: no job is requeued for one lease TTL"
            );
            self.start_grace();
        }
        self.generation = Some(generation);
        self.failed = false;
        let grace = self.in_grace();

        let mut missing = HashSet::new();
        let mut requeued = 0;
        let jobs = orchestrator.store().active_jobs(None).await?;
        let timed_out = timeouts::expire(orchestrator, &jobs).await?;
        for job in jobs.into_iter().filter(|job| !timed_out.contains(&job.id)) {
            let assignment = job.assignment();
            if orchestrator.coord().lease_held(assignment).await? {
                continue;
            }
            if grace || !self.suspects.contains(&assignment) {
                missing.insert(assignment);
                continue;
            }
            if let Some(after) = orchestrator
                .requeue_job(None, assignment, Requeue::LeaseExpired, "the runner was lost: its lease expired")
                .await?
            {
                requeued += 1;
                tracing::warn!(job = %job.id, attempt = job.attempt, state = %after.state, "lease expired");
                if let Some(runner) = job.runner_id {
                    orchestrator.registry().remove_job(runner, job.id);
                }
                orchestrator.job_changed(job.id).await;
            }
        }
        self.suspects = missing;
        if requeued > 0 {
            orchestrator.announce_dispatch().await;
        }
        Ok(requeued)
    }
}

/// Renews `runner`'s lease of `assignment`; `false` when the job is no longer this runner's
/// under this assignment. A lease the coordinator no longer has (it lost its data, or was
/// unreachable for longer than the TTL) is granted again when the database still gives the
/// job to this runner under this assignment: the database, not the coordinator, says who
/// runs what, and a runner that still reports the job is still running it.
pub async fn renew(orchestrator: &Orchestrator, runner: Uuid, assignment: Assignment) -> Result<bool> {
    let ttl = orchestrator.config().lease_ttl();
    if orchestrator.coord().renew_lease(assignment, ttl).await? {
        return Ok(true);
    }
    let current = orchestrator.store().job(assignment.job_id).await?;
    let still_ours = current
        .is_some_and(|job| job.state.is_active() && job.assignment() == assignment && job.runner_id == Some(runner));
    if !still_ours {
        return Ok(false);
    }
    orchestrator.coord().grant_lease(assignment, ttl).await?;
    tracing::info!(%assignment, %runner, "lease re-established from the database: the coordinator had lost it");
    Ok(true)
}

/// Requeues at once every active job the database gives `runner` but that the runner, in
/// its hello, does not list among `kept`: it restarted (or never received the assignment),
/// so nobody runs the job, and waiting for its lease to expire would only delay it. Jobs it
/// lists are left alone.
pub async fn requeue_forgotten(orchestrator: &Orchestrator, runner: Uuid, kept: &HashSet<Uuid>) -> Result<usize> {
    let mut requeued = 0;
    let forgotten =
        orchestrator.store().active_jobs(Some(runner)).await?.into_iter().filter(|job| !kept.contains(&job.id));
    for job in forgotten {
        let assignment = job.assignment();
        let message = "the runner restarted without the job";
        if orchestrator.requeue_job(Some(runner), assignment, Requeue::RunnerForgot, message).await?.is_none() {
            continue;
        }
        requeued += 1;
        tracing::warn!(job = %job.id, attempt = job.attempt, %runner, "requeued: the runner no longer has the job");
        orchestrator.registry().remove_job(runner, job.id);
        if let Err(err) = orchestrator.coord().release_lease(assignment).await {
            tracing::warn!(%assignment, error = %err, "cannot release the lease of a requeued job; it expires by itself");
        }
        orchestrator.job_changed(job.id).await;
    }
    if requeued > 0 {
        orchestrator.announce_dispatch().await;
    }
    Ok(requeued)
}
