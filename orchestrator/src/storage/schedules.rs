//! Schedules and their fires. A fire is claimed once across replicas: the claim locks the
//! schedule's row (`FOR UPDATE` on PostgreSQL; SQLite's single writer), checks that the
//! due time is still ahead of the schedule's `last_due` and the schedule not paused, and
//! inserts the `(schedule, due)` row with `ON CONFLICT DO NOTHING`; only the transaction
//! whose insert won advances `last_due` and returns `true`.
//!
//! Times are compared in Rust after the locked read, never in SQL: SQLite stores them as
//! text.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, LockType, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::codec::{db_err, from_json, now, parse, stored_time, to_json};
use super::entity::{schedule, schedule_fire};
use super::store::{SeaStore, WriteTxn};
use crate::domain::schedules::{MAX_SCHEDULES, ScheduleRecord};
use crate::domain::store::StoreResult;

/// Stores a new schedule; `false` when [`MAX_SCHEDULES`] are stored already.
pub(super) async fn create(store: &SeaStore, record: &ScheduleRecord) -> StoreResult<bool> {
    let model = schedule::Model {
        id: record.id,
        pipeline: record.pipeline.clone(),
        cron: record.cron.clone(),
        time_zone: record.time_zone.clone(),
        inputs: to_json(&record.inputs, "schedules.inputs")?,
        missed: record.missed.as_str().to_owned(),
        paused: record.paused,
        last_due: stored_time(record.last_due),
        created_at: stored_time(record.created_at),
    };
    let txn = store.write().await?;
    if schedule::Entity::find().count(&*txn).await.map_err(db_err)? >= MAX_SCHEDULES {
        return Ok(false);
    }
    schedule::Entity::insert(model.into_active_model()).exec_without_returning(&*txn).await.map_err(db_err)?;
    txn.commit().await?;
    Ok(true)
}

/// A schedule by id.
pub(super) async fn by_id(store: &SeaStore, id: Uuid) -> StoreResult<Option<ScheduleRecord>> {
    let model = schedule::Entity::find_by_id(id).one(&store.db).await.map_err(db_err)?;
    model.map(decode).transpose()
}

/// Schedules by id (creation order: ids are UUIDv7), after `after`, at most `limit`.
pub(super) async fn list(store: &SeaStore, after: Option<Uuid>, limit: u64) -> StoreResult<Vec<ScheduleRecord>> {
    let mut query = schedule::Entity::find();
    if let Some(after) = after {
        query = query.filter(schedule::Column::Id.gt(after));
    }
    let models = query.order_by_asc(schedule::Column::Id).limit(limit).all(&store.db).await.map_err(db_err)?;
    models.into_iter().map(decode).collect()
}

/// Deletes a schedule and its fires; `false` when there was none.
pub(super) async fn delete(store: &SeaStore, id: Uuid) -> StoreResult<bool> {
    let txn = store.write().await?;
    schedule_fire::Entity::delete_many()
        .filter(schedule_fire::Column::ScheduleId.eq(id))
        .exec(&*txn)
        .await
        .map_err(db_err)?;
    let deleted =
        schedule::Entity::delete_many().filter(schedule::Column::Id.eq(id)).exec(&*txn).await.map_err(db_err)?;
    txn.commit().await?;
    Ok(deleted.rows_affected > 0)
}

/// Pauses or resumes a schedule. Resuming moves `last_due` up to `at`: the due times that
/// passed while it was paused were not owed, whatever its missed-run policy.
pub(super) async fn set_paused(
    store: &SeaStore,
    id: Uuid,
    paused: bool,
    at: DateTime<Utc>,
) -> StoreResult<Option<ScheduleRecord>> {
    let txn = store.write().await?;
    let Some(mut model) = locked(&txn, id).await? else { return Ok(None) };
    let mut update = schedule::Entity::update_many().col_expr(schedule::Column::Paused, Expr::value(paused));
    let at = stored_time(at);
    if model.paused && !paused && model.last_due < at {
        update = update.col_expr(schedule::Column::LastDue, Expr::value(at));
        model.last_due = at;
    }
    update.filter(schedule::Column::Id.eq(id)).exec(&*txn).await.map_err(db_err)?;
    txn.commit().await?;
    model.paused = paused;
    decode(model).map(Some)
}

/// Claims the fire of `due`: see the module's documentation.
pub(super) async fn claim_fire(
    store: &SeaStore,
    id: Uuid,
    due: DateTime<Utc>,
    latest_due: DateTime<Utc>,
) -> StoreResult<bool> {
    let (due, latest_due) = (stored_time(due), stored_time(latest_due));
    let txn = store.write().await?;
    let Some(model) = locked(&txn, id).await? else { return Ok(false) };
    if model.paused || model.last_due >= due {
        return Ok(false);
    }
    let fire = schedule_fire::Model { schedule_id: id, due, job_id: None, fired_at: now() };
    let inserted = schedule_fire::Entity::insert(fire.into_active_model())
        .on_conflict(
            OnConflict::columns([schedule_fire::Column::ScheduleId, schedule_fire::Column::Due])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&*txn)
        .await
        .map_err(db_err)?;
    if inserted == 0 {
        return Ok(false);
    }
    advance_locked(&txn, &model, latest_due.max(due)).await?;
    txn.commit().await?;
    Ok(true)
}

/// Records the job a fire launched.
pub(super) async fn record_fire_job(store: &SeaStore, id: Uuid, due: DateTime<Utc>, job: Uuid) -> StoreResult<()> {
    let txn = store.write().await?;
    schedule_fire::Entity::update_many()
        .col_expr(schedule_fire::Column::JobId, Expr::value(job))
        .filter(schedule_fire::Column::ScheduleId.eq(id))
        .filter(schedule_fire::Column::Due.eq(stored_time(due)))
        .exec(&*txn)
        .await
        .map_err(db_err)?;
    txn.commit().await
}

/// Moves `last_due` forward to `latest_due` (never back): due times passed over unfired.
pub(super) async fn advance(store: &SeaStore, id: Uuid, latest_due: DateTime<Utc>) -> StoreResult<()> {
    let txn = store.write().await?;
    let Some(model) = locked(&txn, id).await? else { return Ok(()) };
    advance_locked(&txn, &model, stored_time(latest_due)).await?;
    txn.commit().await
}

/// The schedule `id`, its row locked until the transaction ends.
async fn locked(txn: &WriteTxn, id: Uuid) -> StoreResult<Option<schedule::Model>> {
    schedule::Entity::find_by_id(id).lock(LockType::Update).one(&**txn).await.map_err(db_err)
}

async fn advance_locked(txn: &WriteTxn, model: &schedule::Model, latest_due: DateTime<Utc>) -> StoreResult<()> {
    if latest_due <= model.last_due {
        return Ok(());
    }
    schedule::Entity::update_many()
        .col_expr(schedule::Column::LastDue, Expr::value(latest_due))
        .filter(schedule::Column::Id.eq(model.id))
        .exec(&**txn)
        .await
        .map_err(db_err)?;
    Ok(())
}

fn decode(model: schedule::Model) -> StoreResult<ScheduleRecord> {
    let inputs: BTreeMap<String, String> = from_json(model.inputs, "schedules.inputs")?;
    Ok(ScheduleRecord {
        id: model.id,
        pipeline: model.pipeline,
        cron: model.cron,
        time_zone: model.time_zone,
        inputs,
        missed: parse(&model.missed, "schedules.missed")?,
        paused: model.paused,
        last_due: model.last_due,
        created_at: model.created_at,
    })
}
