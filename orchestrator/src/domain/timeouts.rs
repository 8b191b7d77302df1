//! The job-timeout backstop: a job still running its timeout plus a grace after it started
//! is ended `timed_out` by the orchestrator, whatever its runner says.
//!
//! The runner enforces the job timeout itself and normally reports the job `timed_out`
//! well within the grace. This is for the runner that does not: one whose job is stuck
//! where its own timers cannot reach, or one that is simply wrong, but that keeps
//! heartbeating, so the lease sweeper never sees it gone. The end is fenced like any
//! finish: the runner's later reports under that assignment are refused, and it is told
//! to cancel the job.

use chrono::Utc;
use rivet_core::{FailureReason, JobState};

use crate::domain::error::Result;
use crate::domain::orchestrator::{Orchestrator, RunnerCommand};
use crate::domain::store::{Finish, JobRecord};

/// Ends every job of `jobs` that has been running past its deadline; returns the ids of
/// those it ended, which the caller no longer needs to look at.
pub async fn expire(orchestrator: &Orchestrator, jobs: &[JobRecord]) -> Result<Vec<uuid::Uuid>> {
    let Some(deadline) = orchestrator.config().job_deadline() else { return Ok(Vec::new()) };
    let Ok(deadline) = chrono::Duration::from_std(deadline) else { return Ok(Vec::new()) };
    let now = Utc::now();
    let mut ended = Vec::new();
    for job in jobs {
        let Some(started) = job.started_at.filter(|_| job.state == JobState::Running) else { continue };
        if now - started <= deadline {
            continue;
        }
        let timeout = orchestrator.config().job_timeout_secs;
        let grace = orchestrator.config().job_timeout_grace_secs;
        let finish = Finish {
            state: JobState::TimedOut,
            failure_reason: Some(FailureReason::Timeout),
            message: format!(
                "the job ran past its {timeout} s timeout (job_timeout_secs) and its runner had not stopped it \
                 {grace} s later (job_timeout_grace_secs); the orchestrator ended it"
            ),
            outputs: Default::default(),
        };
        let assignment = job.assignment();
        let Some(after) = orchestrator.finish_job(None, assignment, finish).await? else {
            // The runner reported, or another replica ended it, in the meantime.
            continue;
        };
        tracing::warn!(job = %job.id, attempt = job.attempt, state = %after.state, "job ran past its timeout");
        orchestrator.coord().release_lease(assignment).await?;
        if let Some(runner) = job.runner_id {
            orchestrator.registry().remove_job(runner, job.id);
            let command = RunnerCommand::Cancel { assignment, reason: FailureReason::Timeout };
            orchestrator.send_runner_command(runner, &command).await;
        }
        orchestrator.job_changed(job.id).await;
        ended.push(job.id);
    }
    if !ended.is_empty() {
        orchestrator.announce_dispatch().await;
    }
    Ok(ended)
}
