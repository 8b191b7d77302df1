//! The state changes a runner drives under its assignment: mark running, finish, requeue,
//! stage reports. (The claim that creates an assignment lives in `claim`.)
//!
//! Every fenced change locks the job's row, compares the assignment's epoch and attempt
//! with the stored ones, and the reporting runner with the job's assigned runner, and does
//! nothing on a mismatch: a runner that lost its job can never change it again, and a
//! runner can never change a job assigned to another, whatever assignment it quotes.

use rivet_core::{Assignment, FailureReason, JobState, StageState};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter,
};

use super::codec::{db_err, now, parse, stored_time, to_json};
use super::entity::{job, job_stage};
use super::jobs::{add_transition, lock, record};
use super::store::SeaStore;
use crate::domain::bounds::MAX_STAGES_PER_JOB;
use crate::domain::store::{Finish, JobRecord, StageReport, StoreError, StoreResult};
use uuid::Uuid;

/// `assigned → running`. A repeated report under the same assignment returns the job
/// unchanged.
pub(super) async fn mark_running(
    store: &SeaStore,
    runner: Uuid,
    assignment: Assignment,
) -> StoreResult<Option<JobRecord>> {
    let txn = store.write().await?;
    let Some((model, state)) = fenced(&*txn, Some(runner), assignment).await? else { return Ok(None) };
    let model = match state {
        JobState::Assigned => {
            let at = now();
            let mut active = model.into_active_model();
            active.state = Set(JobState::Running.as_str().to_owned());
            active.started_at = Set(Some(at));
            active.updated_at = Set(at);
            let model = active.update(&*txn).await.map_err(db_err)?;
            add_transition(&*txn, assignment.job_id, JobState::Running, at, "").await?;
            model
        }
        JobState::Running => model,
        _ => return Ok(None),
    };
    let running = record(model)?;
    txn.commit().await?;
    Ok(Some(running))
}

/// Ends an assigned or running job with a terminal state. A non-terminal `finish.state` is
/// refused like a stale assignment.
pub(super) async fn finish(
    store: &SeaStore,
    runner: Option<Uuid>,
    assignment: Assignment,
    finish: Finish,
) -> StoreResult<Option<JobRecord>> {
    if !finish.state.is_terminal() {
        tracing::warn!(job = %assignment.job_id, state = %finish.state, "refused to finish a job in a non-terminal state");
        return Ok(None);
    }
    let outputs = to_json(&finish.outputs, "jobs.outputs")?;
    let txn = store.write().await?;
    let Some((model, state)) = fenced(&*txn, runner, assignment).await? else { return Ok(None) };
    if !state.is_active() {
        return Ok(None);
    }
    let at = now();
    let mut active = model.into_active_model();
    active.state = Set(finish.state.as_str().to_owned());
    active.failure_reason = Set(finish.failure_reason.map(|reason| reason.as_str().to_owned()));
    active.message = Set(finish.message.clone());
    active.outputs = Set(outputs);
    active.runner_id = Set(None);
    active.finished_at = Set(Some(at));
    active.updated_at = Set(at);
    let model = active.update(&*txn).await.map_err(db_err)?;
    add_transition(&*txn, assignment.job_id, finish.state, at, &finish.message).await?;
    let finished = record(model)?;
    txn.commit().await?;
    Ok(Some(finished))
}

/// The runner of an assigned or running job is gone: queue the next attempt, or end the
/// job `lost` (or `cancelled`, when a cancel was requested). `runner` is the runner asking,
/// or `None` when the orchestrator decides (a lease expired, a runner was revoked).
pub(super) async fn requeue(
    store: &SeaStore,
    runner: Option<Uuid>,
    assignment: Assignment,
    message: &str,
) -> StoreResult<Option<JobRecord>> {
    let txn = store.write().await?;
    let Some((model, state)) = fenced(&*txn, runner, assignment).await? else { return Ok(None) };
    if !state.is_active() {
        return Ok(None);
    }
    let at = now();
    let (next, reason) = if model.cancel_requested {
        (JobState::Cancelled, Some(FailureReason::Cancelled))
    } else if model.attempt < model.max_attempts {
        (JobState::Queued, None)
    } else {
        (JobState::Lost, Some(FailureReason::RunnerLost))
    };
    let attempt = model.attempt;
    let mut active = model.into_active_model();
    active.state = Set(next.as_str().to_owned());
    active.failure_reason = Set(reason.map(|reason| reason.as_str().to_owned()));
    active.message = Set(message.to_owned());
    active.runner_id = Set(None);
    active.updated_at = Set(at);
    if next == JobState::Queued {
        active.attempt = Set(attempt + 1);
        active.started_at = Set(None);
    } else {
        active.finished_at = Set(Some(at));
    }
    let model = active.update(&*txn).await.map_err(db_err)?;
    add_transition(&*txn, assignment.job_id, next, at, message).await?;
    let requeued = record(model)?;
    txn.commit().await?;
    Ok(Some(requeued))
}

/// Inserts or updates a stage of an assigned or running job.
pub(super) async fn record_stage(
    store: &SeaStore,
    runner: Uuid,
    assignment: Assignment,
    report: StageReport<'_>,
) -> StoreResult<bool> {
    let StageReport { stage, state, failure_reason, message, at } = report;
    let txn = store.write().await?;
    let Some((_, job_state)) = fenced(&*txn, Some(runner), assignment).await? else { return Ok(false) };
    if !job_state.is_active() {
        return Ok(false);
    }
    let at = stored_time(at);
    let (starts, ends) = match state {
        StageState::Pending => (false, false),
        StageState::Running => (true, false),
        StageState::Skipped => (false, true),
        StageState::Succeeded | StageState::Failed | StageState::Cancelled | StageState::TimedOut => (true, true),
    };
    let existing =
        job_stage::Entity::find_by_id((assignment.job_id, stage.to_owned())).one(&*txn).await.map_err(db_err)?;
    let reason = failure_reason.map(|reason| reason.as_str().to_owned());
    match existing {
        Some(model) => {
            let started_at = model.started_at.or(starts.then_some(at));
            let finished_at = if ends { Some(at) } else { model.finished_at };
            let mut active = model.into_active_model();
            active.state = Set(state.as_str().to_owned());
            active.started_at = Set(started_at);
            active.finished_at = Set(finished_at);
            active.failure_reason = Set(reason);
            active.message = Set(message.to_owned());
            active.update(&*txn).await.map_err(db_err)?;
        }
        None => {
            let position = job_stage::Entity::find()
                .filter(job_stage::Column::JobId.eq(assignment.job_id))
                .count(&*txn)
                .await
                .map_err(db_err)?;
            if position >= MAX_STAGES_PER_JOB {
                // Accepted but not stored: refusing would make the runner give the job up.
                tracing::warn!(job = %assignment.job_id, stage, "a runner reported more stages than a job may have");
                return Ok(true);
            }
            let position = i32::try_from(position).map_err(|_| {
                StoreError::Corrupt(format!("job_stages: job {} has too many stages", assignment.job_id))
            })?;
            let model = job_stage::ActiveModel {
                job_id: Set(assignment.job_id),
                name: Set(stage.to_owned()),
                position: Set(position),
                state: Set(state.as_str().to_owned()),
                started_at: Set(starts.then_some(at)),
                finished_at: Set(ends.then_some(at)),
                failure_reason: Set(reason),
                message: Set(message.to_owned()),
            };
            job_stage::Entity::insert(model).exec_without_returning(&*txn).await.map_err(db_err)?;
        }
    }
    txn.commit().await?;
    Ok(true)
}

/// Locks the assignment's job and returns it with its state when the assignment is still
/// the job's current one (same epoch and attempt) and, when `runner` is given, the job is
/// assigned to that runner.
pub(super) async fn fenced(
    txn: &impl ConnectionTrait,
    runner: Option<Uuid>,
    assignment: Assignment,
) -> StoreResult<Option<(job::Model, JobState)>> {
    let Some(model) = lock(txn, assignment.job_id).await? else { return Ok(None) };
    if runner.is_some_and(|runner| model.runner_id != Some(runner)) {
        return Ok(None);
    }
    // An epoch or attempt too large to store cannot be the current one.
    let (Ok(epoch), Ok(attempt)) = (i64::try_from(assignment.epoch), i32::try_from(assignment.attempt)) else {
        return Ok(None);
    };
    if model.epoch != epoch || model.attempt != attempt {
        return Ok(None);
    }
    let state = parse(&model.state, "jobs.state")?;
    Ok(Some((model, state)))
}
