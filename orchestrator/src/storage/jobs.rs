//! Jobs: creation (idempotent by key), reads, listings, transitions, stages and cancel.
//! The state changes a runner drives live in `lifecycle`.

use std::collections::BTreeMap;

use rivet_core::{FailureReason, JobOrigin, JobState, PipelineDefinition};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::codec::{db_err, from_json, from_u32, now, parse, parse_opt, to_json, to_u32, to_u64};
use super::entity::{job, job_stage, job_transition, pipeline};
use super::store::SeaStore;
use crate::domain::store::{
    CancelOutcome, JobCursor, JobFilter, JobRecord, NewJob, QueueGroup, StageRecord, StoreError, StoreResult,
    Transition,
};

/// Creates a queued job, or returns the job its idempotency key already names.
pub(super) async fn create(store: &SeaStore, new: NewJob) -> StoreResult<(JobRecord, bool)> {
    // A retried launch usually finds its job here, without taking the writer lock.
    if let Some(key) = &new.idempotency_key
        && let Some(existing) = by_key(&store.db, key).await?
    {
        return Ok((existing, false));
    }
    let inputs = to_json(&new.inputs, "jobs.inputs")?;
    let max_attempts = from_u32(new.max_attempts, "jobs.max_attempts")?;
    let txn = store.write().await?;
    let Some(pipeline) = pipeline::Entity::find_by_id(new.pipeline_id).one(&*txn).await.map_err(db_err)? else {
        return Err(StoreError::Corrupt(format!("jobs.pipeline_id: no pipeline {}", new.pipeline_id)));
    };
    let definition: PipelineDefinition = from_json(pipeline.definition, "pipelines.definition")?;
    let tags: BTreeMap<String, String> = definition.runner.into_iter().map(|tag| (tag.key, tag.value)).collect();
    let at = now();
    let model = job::Model {
        id: new.id,
        pipeline_id: pipeline.id,
        pipeline_name: pipeline.name,
        pipeline_version: pipeline.version,
        tags: to_json(&tags, "jobs.tags")?,
        state: JobState::Queued.as_str().to_owned(),
        failure_reason: None,
        message: String::new(),
        inputs,
        attempt: 1,
        epoch: 0,
        max_attempts,
        runner_id: None,
        idempotency_key: new.idempotency_key.clone(),
        outputs: serde_json::Value::Object(serde_json::Map::new()),
        cancel_requested: false,
        log_sequence: 0,
        created_at: at,
        started_at: None,
        finished_at: None,
        updated_at: at,
        trace_parent: new.trace.map(|trace| trace.to_string()),
        origin: Some(to_json(&new.origin, "jobs.origin")?),
    };
    // A concurrent launch with the same key may have committed since the read above; the
    // unique index then makes this insert a no-op, and the first job is returned.
    let inserted = job::Entity::insert(model.clone().into_active_model().reset_all())
        .on_conflict(OnConflict::column(job::Column::IdempotencyKey).do_nothing().to_owned())
        .exec_without_returning(&*txn)
        .await
        .map_err(db_err)?;
    if inserted == 0 {
        let key = new.idempotency_key.as_deref().unwrap_or_default();
        let existing = by_key(&*txn, key).await?;
        return existing
            .map(|existing| (existing, false))
            .ok_or_else(|| StoreError::Unavailable(format!("job {} was neither inserted nor found", new.id)));
    }
    add_transition(&*txn, new.id, JobState::Queued, at, "").await?;
    txn.commit().await?;
    Ok((record(model)?, true))
}

/// A job by id.
pub(super) async fn by_id(store: &SeaStore, id: Uuid) -> StoreResult<Option<JobRecord>> {
    let model = job::Entity::find_by_id(id).one(&store.db).await.map_err(db_err)?;
    model.map(record).transpose()
}

/// Jobs newest first (ties broken by id), after `cursor`.
pub(super) async fn list(
    store: &SeaStore,
    filter: &JobFilter,
    cursor: Option<&JobCursor>,
    limit: u64,
) -> StoreResult<Vec<JobRecord>> {
    let mut query = job::Entity::find();
    if let Some(name) = &filter.pipeline_name {
        query = query.filter(job::Column::PipelineName.eq(name.as_str()));
    }
    if !filter.states.is_empty() {
        query = query.filter(job::Column::State.is_in(filter.states.iter().map(|state| state.as_str())));
    }
    if let Some(cursor) = cursor {
        query = query.filter(Condition::any().add(job::Column::CreatedAt.lt(cursor.created_at)).add(
            Condition::all().add(job::Column::CreatedAt.eq(cursor.created_at)).add(job::Column::Id.lt(cursor.id)),
        ));
    }
    let models = query
        .order_by_desc(job::Column::CreatedAt)
        .order_by_desc(job::Column::Id)
        .limit(limit)
        .all(&store.db)
        .await
        .map_err(db_err)?;
    models.into_iter().map(record).collect()
}

/// The queue by runner tags, the largest groups first, at most `limit` of them.
pub(super) async fn queue_summary(store: &SeaStore, limit: u32) -> StoreResult<Vec<QueueGroup>> {
    let rows: Vec<(serde_json::Value, i64, chrono::DateTime<chrono::Utc>)> = job::Entity::find()
        .select_only()
        .column(job::Column::Tags)
        .column_as(job::Column::Id.count(), "depth")
        .column_as(job::Column::CreatedAt.min(), "oldest")
        .filter(job::Column::State.eq(JobState::Queued.as_str()))
        .group_by(job::Column::Tags)
        .order_by_desc(job::Column::Id.count())
        .limit(u64::from(limit))
        .into_tuple()
        .all(&store.db)
        .await
        .map_err(db_err)?;
    rows.into_iter()
        .map(|(tags, depth, oldest)| {
            Ok(QueueGroup { tags: from_json(tags, "jobs.tags")?, depth: to_u64(depth, "jobs count")?, oldest })
        })
        .collect()
}

/// A job's transitions, oldest first.
pub(super) async fn transitions(store: &SeaStore, job: Uuid) -> StoreResult<Vec<Transition>> {
    let models = job_transition::Entity::find()
        .filter(job_transition::Column::JobId.eq(job))
        .order_by_asc(job_transition::Column::Id)
        .all(&store.db)
        .await
        .map_err(db_err)?;
    models
        .into_iter()
        .map(|model| {
            Ok(Transition {
                state: parse(&model.state, "job_transitions.state")?,
                at: model.at,
                message: model.message,
            })
        })
        .collect()
}

/// A job's stages, in the order they were first reported.
pub(super) async fn stages(store: &SeaStore, job: Uuid) -> StoreResult<Vec<StageRecord>> {
    let models = job_stage::Entity::find()
        .filter(job_stage::Column::JobId.eq(job))
        .order_by_asc(job_stage::Column::Position)
        .all(&store.db)
        .await
        .map_err(db_err)?;
    models
        .into_iter()
        .map(|model| {
            Ok(StageRecord {
                name: model.name,
                state: parse(&model.state, "job_stages.state")?,
                started_at: model.started_at,
                finished_at: model.finished_at,
                failure_reason: parse_opt(model.failure_reason.as_deref(), "job_stages.failure_reason")?,
                message: model.message,
            })
        })
        .collect()
}

/// Cancels a queued job at once; marks a held one for its runner to stop.
pub(super) async fn cancel(store: &SeaStore, id: Uuid) -> StoreResult<Option<CancelOutcome>> {
    let txn = store.write().await?;
    let Some(model) = lock(&*txn, id).await? else { return Ok(None) };
    let state: JobState = parse(&model.state, "jobs.state")?;
    let outcome = match state {
        JobState::Queued => {
            let at = now();
            let mut active = model.into_active_model();
            active.state = Set(JobState::Cancelled.as_str().to_owned());
            active.failure_reason = Set(Some(FailureReason::Cancelled.as_str().to_owned()));
            active.message = Set("cancelled before it started".to_owned());
            active.finished_at = Set(Some(at));
            active.updated_at = Set(at);
            let model = active.update(&*txn).await.map_err(db_err)?;
            add_transition(&*txn, id, JobState::Cancelled, at, "cancelled before it started").await?;
            CancelOutcome::Cancelled(record(model)?)
        }
        JobState::Assigned | JobState::Running => {
            let model = if model.cancel_requested {
                model
            } else {
                let mut active = model.into_active_model();
                active.cancel_requested = Set(true);
                active.updated_at = Set(now());
                active.update(&*txn).await.map_err(db_err)?
            };
            CancelOutcome::Requested(record(model)?)
        }
        JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::TimedOut | JobState::Lost => {
            CancelOutcome::AlreadyEnded(record(model)?)
        }
    };
    txn.commit().await?;
    Ok(Some(outcome))
}

/// Whether a cancel was requested; `false` for an unknown job.
pub(super) async fn cancel_requested(store: &SeaStore, id: Uuid) -> StoreResult<bool> {
    let requested: Option<bool> = job::Entity::find_by_id(id)
        .select_only()
        .column(job::Column::CancelRequested)
        .into_tuple()
        .one(&store.db)
        .await
        .map_err(db_err)?;
    Ok(requested.unwrap_or(false))
}

/// Jobs a runner holds, oldest first.
pub(super) async fn active(store: &SeaStore, runner: Option<Uuid>) -> StoreResult<Vec<JobRecord>> {
    let mut query =
        job::Entity::find().filter(job::Column::State.is_in([JobState::Assigned.as_str(), JobState::Running.as_str()]));
    if let Some(runner) = runner {
        query = query.filter(job::Column::RunnerId.eq(runner));
    }
    let models = query
        .order_by_asc(job::Column::CreatedAt)
        .order_by_asc(job::Column::Id)
        .all(&store.db)
        .await
        .map_err(db_err)?;
    models.into_iter().map(record).collect()
}

/// A job by idempotency key.
async fn by_key(db: &impl ConnectionTrait, key: &str) -> StoreResult<Option<JobRecord>> {
    let model = job::Entity::find().filter(job::Column::IdempotencyKey.eq(key)).one(db).await.map_err(db_err)?;
    model.map(record).transpose()
}

/// Reads a job inside a write transaction, locking its row on PostgreSQL (SQLite's
/// immediate transaction already excludes other writers).
pub(super) async fn lock(txn: &impl ConnectionTrait, id: Uuid) -> StoreResult<Option<job::Model>> {
    job::Entity::find_by_id(id).lock_exclusive().one(txn).await.map_err(db_err)
}

/// Records that a job entered `state`.
pub(super) async fn add_transition(
    txn: &impl ConnectionTrait,
    job_id: Uuid,
    state: JobState,
    at: chrono::DateTime<chrono::Utc>,
    message: &str,
) -> StoreResult<()> {
    let transition = job_transition::ActiveModel {
        job_id: Set(job_id),
        state: Set(state.as_str().to_owned()),
        at: Set(at),
        message: Set(message.to_owned()),
        ..Default::default()
    };
    job_transition::Entity::insert(transition).exec_without_returning(txn).await.map_err(db_err)?;
    Ok(())
}

/// Decodes a stored job.
pub(super) fn record(model: job::Model) -> StoreResult<JobRecord> {
    Ok(JobRecord {
        id: model.id,
        pipeline_id: model.pipeline_id,
        pipeline_name: model.pipeline_name,
        pipeline_version: to_u32(model.pipeline_version, "jobs.pipeline_version")?,
        tags: from_json(model.tags, "jobs.tags")?,
        state: parse(&model.state, "jobs.state")?,
        failure_reason: parse_opt(model.failure_reason.as_deref(), "jobs.failure_reason")?,
        message: model.message,
        inputs: from_json(model.inputs, "jobs.inputs")?,
        attempt: to_u32(model.attempt, "jobs.attempt")?,
        epoch: to_u64(model.epoch, "jobs.epoch")?,
        max_attempts: to_u32(model.max_attempts, "jobs.max_attempts")?,
        runner_id: model.runner_id,
        idempotency_key: model.idempotency_key,
        outputs: from_json(model.outputs, "jobs.outputs")?,
        created_at: model.created_at,
        started_at: model.started_at,
        finished_at: model.finished_at,
        // Advisory, like every trace context: one that does not parse is dropped.
        trace: model.trace_parent.as_deref().and_then(|text| text.parse().ok()),
        origin: match model.origin {
            Some(origin) => from_json(origin, "jobs.origin")?,
            None => JobOrigin::Api { caller: None },
        },
    })
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, QueryTrait};

    use super::*;

    #[test]
    fn writes_lock_the_job_row_on_postgres() {
        let postgres = job::Entity::find_by_id(Uuid::nil()).lock_exclusive().build(DbBackend::Postgres).to_string();
        assert!(postgres.ends_with("FOR UPDATE"), "{postgres}");
    }
}
