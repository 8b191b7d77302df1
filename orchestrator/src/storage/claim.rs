//! Claiming the oldest queued job a runner can run, atomically across replicas.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rivet_core::JobState;
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, Select, prelude::Json,
};
use uuid::Uuid;

use super::codec::{db_err, from_json, now, to_u64};
use super::entity::job;
use super::jobs::{add_transition, record};
use super::store::SeaStore;
use crate::domain::store::{JobRecord, StoreError, StoreResult};

/// Queued jobs examined per page of the scan.
const SCAN_PAGE: u64 = 64;

/// Claims the oldest queued job whose tags `labels` satisfy, in one write transaction.
///
/// The scan reads queued jobs oldest first, a page of [`SCAN_PAGE`] at a time, without
/// locking them, and matches their tags in Rust. Each matching job is then locked on its
/// own with `FOR UPDATE SKIP LOCKED` while still `queued`: a job another replica is
/// claiming right now is skipped, and one it has just claimed is no longer `queued`, so
/// two claims never return the same job. Only the job being claimed is ever locked, so
/// claims for different tags never hold each other up. On SQLite the lock clause is
/// dropped; the immediate transaction excludes every other writer for the whole claim.
pub(super) async fn claim(
    store: &SeaStore,
    runner_id: Uuid,
    labels: &BTreeMap<String, String>,
) -> StoreResult<Option<(JobRecord, u64)>> {
    let txn = store.write().await?;
    let mut after: Option<(DateTime<Utc>, Uuid)> = None;
    loop {
        let page: Vec<(Uuid, DateTime<Utc>, Json)> = scan_page(after).into_tuple().all(&*txn).await.map_err(db_err)?;
        for (id, _, _) in page.iter().filter(|(id, _, tags)| satisfies(*id, tags, labels)) {
            let Some(model) = lock_if_queued(*id).one(&*txn).await.map_err(db_err)? else { continue };
            // The lock re-read the row: its tags may have been rewritten since the scan.
            if !satisfies(model.id, &model.tags, labels) {
                continue;
            }
            let claimed = assign(&txn, model, runner_id).await?;
            txn.commit().await?;
            return Ok(Some(claimed));
        }
        if (page.len() as u64) < SCAN_PAGE {
            return Ok(None);
        }
        after = page.last().map(|(id, created_at, _)| (*created_at, *id));
    }
}

/// Hands a locked queued job to `runner_id` under the next epoch.
async fn assign(
    txn: &sea_orm::DatabaseTransaction,
    model: job::Model,
    runner_id: Uuid,
) -> StoreResult<(JobRecord, u64)> {
    let next_log = to_u64(model.log_sequence, "jobs.log_sequence")?
        .checked_add(1)
        .ok_or_else(|| StoreError::Corrupt(format!("jobs.log_sequence: job {} is full", model.id)))?;
    let epoch = model
        .epoch
        .checked_add(1)
        .ok_or_else(|| StoreError::Corrupt(format!("jobs.epoch: job {} has no next epoch", model.id)))?;
    let at = now();
    let id = model.id;
    let mut active = model.into_active_model();
    active.state = Set(JobState::Assigned.as_str().to_owned());
    active.runner_id = Set(Some(runner_id));
    active.epoch = Set(epoch);
    active.updated_at = Set(at);
    let model = active.update(txn).await.map_err(db_err)?;
    add_transition(txn, id, JobState::Assigned, at, &format!("assigned to runner {runner_id}")).await?;
    Ok((record(model)?, next_log))
}

/// The id, creation time and tags of the next [`SCAN_PAGE`] queued jobs after `after`
/// (creation time, id), oldest first. Nothing is locked.
fn scan_page(after: Option<(DateTime<Utc>, Uuid)>) -> Select<job::Entity> {
    let mut query = job::Entity::find()
        .select_only()
        .columns([job::Column::Id, job::Column::CreatedAt, job::Column::Tags])
        .filter(job::Column::State.eq(JobState::Queued.as_str()));
    if let Some((created_at, id)) = after {
        query = query.filter(
            Condition::any()
                .add(job::Column::CreatedAt.gt(created_at))
                .add(Condition::all().add(job::Column::CreatedAt.eq(created_at)).add(job::Column::Id.gt(id))),
        );
    }
    query.order_by_asc(job::Column::CreatedAt).order_by_asc(job::Column::Id).limit(SCAN_PAGE)
}

/// The job `id`, locked, if it is still queued and no other transaction holds it.
fn lock_if_queued(id: Uuid) -> Select<job::Entity> {
    job::Entity::find_by_id(id)
        .filter(job::Column::State.eq(JobState::Queued.as_str()))
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
}

/// Whether a runner's labels carry every tag of the job, with the same value. A job whose
/// tags cannot be decoded is never claimed, and said so loudly.
fn satisfies(id: Uuid, tags: &Json, labels: &BTreeMap<String, String>) -> bool {
    match from_json::<BTreeMap<String, String>>(tags.clone(), "jobs.tags") {
        Ok(tags) => tags.iter().all(|(key, value)| labels.get(key) == Some(value)),
        Err(err) => {
            tracing::error!(job = %id, %err, "queued job cannot be claimed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, QueryTrait};

    use super::*;

    #[test]
    fn only_the_claimed_job_is_locked_and_locked_jobs_are_skipped() {
        let scan = scan_page(Some((Utc::now(), Uuid::nil()))).build(DbBackend::Postgres).to_string();
        assert!(scan.ends_with("ORDER BY \"jobs\".\"created_at\" ASC, \"jobs\".\"id\" ASC LIMIT 64"), "{scan}");
        let lock = lock_if_queued(Uuid::nil()).build(DbBackend::Postgres).to_string();
        assert!(lock.ends_with("AND \"jobs\".\"state\" = 'queued' FOR UPDATE SKIP LOCKED"), "{lock}");
        // SQLite has no row locks; its immediate transaction excludes other writers instead.
        let lock = lock_if_queued(Uuid::nil()).build(DbBackend::Sqlite).to_string();
        assert!(!lock.contains("FOR UPDATE"), "{lock}");
    }

    #[test]
    fn tags_are_satisfied_by_equal_labels() {
        let labels: BTreeMap<String, String> =
            [("os", "linux"), ("arch", "arm64")].map(|(k, v)| (k.to_owned(), v.to_owned())).into();
        let check = |tags: Json, expected: bool| assert_eq!(satisfies(Uuid::nil(), &tags, &labels), expected, "{tags}");
        check(serde_json::json!({}), true);
        check(serde_json::json!({"os": "linux"}), true);
        check(serde_json::json!({"os": "linux", "arch": "arm64"}), true);
        check(serde_json::json!({"os": "windows"}), false);
        check(serde_json::json!({"gpu": "true"}), false);
        check(serde_json::json!(["os"]), false);
    }
}
