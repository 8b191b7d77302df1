//! The lease sweeper: any replica requeues (or marks lost) a job whose lease expired, so
//! nothing stays "running" after its runner vanished. The same sweep ends jobs that ran
//! past their timeout plus its grace (`timeouts`), so nothing stays "running" forever
//! behind a runner that heartbeats but never finishes.

use std::collections::HashSet;
use std::time::Duration;

use rivet_core::Assignment;
use tokio_util::sync::CancellationToken;

use crate::domain::error::Result;
use crate::domain::orchestrator::Orchestrator;
use crate::domain::timeouts;

/// Runs the sweeper until `shutdown`. The first sweep waits one lease TTL, so runners of a
/// restarted orchestrator have time to reconnect and renew their leases.
pub async fn run(orchestrator: Orchestrator, shutdown: CancellationToken) {
    let ttl = orchestrator.config().lease_ttl();
    let period = (ttl / 3).max(Duration::from_millis(100));
    let mut suspects = HashSet::new();
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
        if let Err(err) = sweep(&orchestrator, &mut suspects).await {
            tracing::warn!(error = %err, "lease sweep failed; retrying");
        }
    }
}

/// One sweep. A job is requeued only when its lease is missing on two sweeps in a row:
/// a job claimed a moment ago may not have its lease granted yet.
pub async fn sweep(orchestrator: &Orchestrator, suspects: &mut HashSet<Assignment>) -> Result<usize> {
    let mut missing = HashSet::new();
    let mut requeued = 0;
    let jobs = orchestrator.store().active_jobs().await?;
    let timed_out = timeouts::expire(orchestrator, &jobs).await?;
    for job in jobs.into_iter().filter(|job| !timed_out.contains(&job.id)) {
        let assignment = job.assignment();
        if orchestrator.coord().lease_held(assignment).await? {
            continue;
        }
        if !suspects.contains(&assignment) {
            missing.insert(assignment);
            continue;
        }
        if let Some(after) =
            orchestrator.store().requeue_job(None, assignment, "the runner was lost: its lease expired").await?
        {
            requeued += 1;
            tracing::warn!(job = %job.id, attempt = job.attempt, state = %after.state, "lease expired");
            if let Some(runner) = job.runner_id {
                orchestrator.registry().remove_job(runner, job.id);
            }
            orchestrator.job_changed(job.id).await;
        }
    }
    *suspects = missing;
    if requeued > 0 {
        orchestrator.announce_dispatch().await;
    }
    Ok(requeued)
}
