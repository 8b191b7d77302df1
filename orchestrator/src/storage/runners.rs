//! The runner registry.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, EntityTrait, QueryOrder};

use super::codec::{db_err, from_json, from_u32, stored_time, to_json, to_u32};
use super::entity::runner;
use super::store::SeaStore;
use crate::domain::store::{RunnerRecord, StoreResult};

/// Inserts a runner, or updates every field of a known one.
pub(super) async fn upsert(store: &SeaStore, record: &RunnerRecord) -> StoreResult<()> {
    let model = runner::ActiveModel {
        id: Set(record.id),
        name: Set(record.name.clone()),
        labels: Set(to_json(&record.labels, "runners.labels")?),
        capacity: Set(from_u32(record.capacity, "runners.capacity")?),
        version: Set(record.version.clone()),
        last_seen: Set(stored_time(record.last_seen)),
    };
    let txn = store.write().await?;
    runner::Entity::insert(model)
        .on_conflict(
            OnConflict::column(runner::Column::Id)
                .update_columns([
                    runner::Column::Name,
                    runner::Column::Labels,
                    runner::Column::Capacity,
                    runner::Column::Version,
                    runner::Column::LastSeen,
                ])
                .to_owned(),
        )
        .exec_without_returning(&*txn)
        .await
        .map_err(db_err)?;
    txn.commit().await
}

/// Every known runner, by name.
pub(super) async fn all(store: &SeaStore) -> StoreResult<Vec<RunnerRecord>> {
    let models = runner::Entity::find()
        .order_by_asc(runner::Column::Name)
        .order_by_asc(runner::Column::Id)
        .all(&store.db)
        .await
        .map_err(db_err)?;
    models
        .into_iter()
        .map(|model| {
            Ok(RunnerRecord {
                id: model.id,
                name: model.name,
                labels: from_json(model.labels, "runners.labels")?,
                capacity: to_u32(model.capacity, "runners.capacity")?,
                version: model.version,
                last_seen: model.last_seen,
            })
        })
        .collect()
}
