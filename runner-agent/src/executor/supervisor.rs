//! The supervisor: watches a job from the runner's runtime, outside the job's thread, and
//! ends the job on time whatever its script does.
//!
//! A job's Lua runs on a thread of its own. As long as the script returns to the VM or
//! waits on the host, the thread notices a stop by itself. A script stuck inside one C (or
//! Rust) call does neither: its thread cannot time itself out. So the deadlines live here,
//! on the runtime that also does the job's Podman I/O:
//!
//! 1. A cancel, the job's timeout, the running stage's timeout (published by the stage
//!    driver through [`JobContext::stage_clock`]) or a stop requested inside the job (the
//!    spill limit) is recorded in the context and stops the job's processes.
//! 2. The thread gets the processes' grace period plus [`UNWIND_SLACK`] to unwind and
//!    report the stages itself, and [`ABANDON_SLACK`] more to hand its result over.
//! 3. If it has not by then, it is abandoned: the context is sealed (nothing the thread
//!    does later is reported), the running stage is reported with the stop's reason and
//!    every later stage as skipped, the Lua budget is killed (so the script fails at its
//!    next instruction if its call ever returns), and the job ends `cancelled`,
//!    `timed_out` or `failed` at once. The thread is left to end on its own.

use std::sync::Arc;
use std::time::Duration;

use rivet_core::FailureReason;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::context::JobContext;
use super::error::Error;
use super::stop::{Finish, StageFailure};

/// How long a stopped script gets to unwind after its process's grace period.
pub(crate) const UNWIND_SLACK: Duration = Duration::from_secs(3);

/// How much longer than the script's unwinding the supervisor waits for the thread's
/// result before it abandons the thread.
pub(crate) const ABANDON_SLACK: Duration = Duration::from_secs(1);

/// The running stage's deadline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StageClock {
    pub stage: String,
    pub deadline: Instant,
    pub limit: Duration,
}

/// Waits for the job's thread to hand over how the stages ended, stopping and, when it
/// must, abandoning the thread on a cancel or a deadline.
pub(crate) async fn supervise(
    ctx: Arc<JobContext>,
    mut finished: oneshot::Receiver<Finish>,
    cancel: CancellationToken,
    job_deadline: Option<(Instant, Duration)>,
) -> Finish {
    let why = tokio::select! {
        finish = &mut finished => return finish.unwrap_or_else(|_| thread_died()),
        why = next_stop(&ctx, &cancel, job_deadline) => why,
    };
    ctx.request_stop(why);
    let patience = ctx.config.cancel_grace() + UNWIND_SLACK + ABANDON_SLACK;
    match tokio::time::timeout(patience, &mut finished).await {
        Ok(finish) => finish.unwrap_or_else(|_| thread_died()),
        Err(_) => {
            let why = ctx.stop_failure().unwrap_or_else(StageFailure::cancelled);
            tracing::warn!(job = %ctx.assignment, reason = %why.reason, "the job's script did not stop: abandoning its thread");
            ctx.budget.kill();
            let note = format!(" (the script did not stop within {patience:?} and was abandoned)");
            let stage = ctx.abandon(&why, &note);
            let mut finish = Finish::of_failure(stage.as_deref().unwrap_or_default(), &why);
            finish.message.push_str(&note);
            finish
        }
    }
}

fn thread_died() -> Finish {
    Finish::failed(FailureReason::Internal, Error::Thread("the job's thread died".to_owned()).to_string())
}

/// The first reason to stop the job.
async fn next_stop(
    ctx: &JobContext,
    cancel: &CancellationToken,
    job_deadline: Option<(Instant, Duration)>,
) -> StageFailure {
    let mut clock = ctx.stage_clock.subscribe();
    let job_timeout = sleep_until(job_deadline.map(|(at, _)| at));
    let mut job_timeout = std::pin::pin!(job_timeout);
    loop {
        let running = clock.borrow_and_update().clone();
        tokio::select! {
            () = cancel.cancelled() => return StageFailure::cancelled(),
            () = ctx.stop.cancelled() => return ctx.stop_failure().unwrap_or_else(StageFailure::cancelled),
            () = &mut job_timeout => {
                let limit = job_deadline.map(|(_, limit)| limit).unwrap_or_default();
                return StageFailure::stopped(FailureReason::Timeout, format!("the job timed out after {limit:?}"));
            }
            () = sleep_until(running.as_ref().map(|clock| clock.deadline)) => {
                if let Some(why) = stage_timed_out(ctx, running) {
                    return why;
                }
            }
            changed = clock.changed() => {
                // The sender lives in the context, which outlives this future.
                if changed.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// Records the stage's timeout, unless the stage ended meanwhile. The check and the record
/// happen under the clock's lock, which the stage driver also takes to clear the clock when
/// the stage ends: a stage is either reported as it ended or as timed out, never both.
fn stage_timed_out(ctx: &JobContext, expired: Option<StageClock>) -> Option<StageFailure> {
    let expired = expired?;
    let mut why = None;
    ctx.stage_clock.send_if_modified(|clock| {
        if clock.as_ref() == Some(&expired) {
            let failure = StageFailure {
                stage: Some(expired.stage.clone()),
                ..StageFailure::stopped(FailureReason::Timeout, format!("timed out after {:?}", expired.limit))
            };
            ctx.request_stop(failure.clone());
            why = Some(failure);
        }
        false
    });
    why
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
