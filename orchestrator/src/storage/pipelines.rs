//! Pipeline versions: numbered per name, the latest listed per name.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query, SubQueryStatement};
use sea_orm::{ActiveValue::Set, EntityTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr};
use uuid::Uuid;

use super::codec::{db_err, from_json, from_u32, now, to_json, to_u32};
use super::entity::pipeline;
use super::store::SeaStore;
use crate::domain::store::{NewPipeline, PipelineRecord, StoreError, StoreResult};

/// How often a create retries after losing a race for the next version number.
const CREATE_ATTEMPTS: usize = 32;

/// Stores `new` as the next version of its name.
///
/// The next version is read and inserted in one transaction; two replicas creating the
/// same name at once both read the same latest version, and the unique (name, version)
/// index refuses the second insert, which then retries with a fresh read.
pub(super) async fn create(store: &SeaStore, new: NewPipeline) -> StoreResult<PipelineRecord> {
    let definition = to_json(&new.definition, "pipelines.definition")?;
    let plugins = if new.plugins.is_empty() { None } else { Some(to_json(&new.plugins, "pipelines.plugins")?) };
    for _ in 0..CREATE_ATTEMPTS {
        let txn = store.write().await?;
        let latest: Option<i32> = pipeline::Entity::find()
            .select_only()
            .column(pipeline::Column::Version)
            .filter(Expr::col(pipeline::Column::Name).eq(new.name.as_str()))
            .order_by_desc(pipeline::Column::Version)
            .into_tuple()
            .one(&*txn)
            .await
            .map_err(db_err)?;
        let version = to_u32(latest.unwrap_or(0), "pipelines.version")?
            .checked_add(1)
            .ok_or_else(|| StoreError::Corrupt(format!("pipelines.version: {} has no next version", new.name)))?;
        let record = PipelineRecord {
            id: Uuid::now_v7(),
            name: new.name.clone(),
            version,
            source: new.source.clone(),
            file_name: new.file_name.clone(),
            definition: new.definition.clone(),
            created_at: now(),
            plugins: new.plugins.clone(),
        };
        let model = pipeline::ActiveModel {
            id: Set(record.id),
            name: Set(record.name.clone()),
            version: Set(from_u32(version, "pipelines.version")?),
            source: Set(record.source.clone()),
            file_name: Set(record.file_name.clone()),
            definition: Set(definition.clone()),
            created_at: Set(record.created_at),
            plugins: Set(plugins.clone()),
        };
        match pipeline::Entity::insert(model).exec_without_returning(&*txn).await {
            Ok(_) => {
                txn.commit().await?;
                return Ok(record);
            }
            Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => continue,
            Err(err) => return Err(db_err(err)),
        }
    }
    Err(StoreError::Unavailable(format!(
        "failed to number a new version of pipeline {}: too much contention",
        new.name
    )))
}

/// One pipeline version by id.
pub(super) async fn by_id(store: &SeaStore, id: Uuid) -> StoreResult<Option<PipelineRecord>> {
    let model = pipeline::Entity::find_by_id(id).one(&store.db).await.map_err(db_err)?;
    model.map(record).transpose()
}

/// A version of a name, or its latest.
pub(super) async fn by_name(store: &SeaStore, name: &str, version: Option<u32>) -> StoreResult<Option<PipelineRecord>> {
    let mut query = pipeline::Entity::find().filter(Expr::col(pipeline::Column::Name).eq(name));
    query = match version {
        Some(version) => {
            // No stored version can be numbered past i32::MAX.
            let Ok(version) = i32::try_from(version) else { return Ok(None) };
            query.filter(Expr::col(pipeline::Column::Version).eq(version))
        }
        None => query.order_by_desc(pipeline::Column::Version),
    };
    let model = query.one(&store.db).await.map_err(db_err)?;
    model.map(record).transpose()
}

/// The latest version of each name, by name, after `after_name`.
pub(super) async fn list(store: &SeaStore, after_name: Option<&str>, limit: u64) -> StoreResult<Vec<PipelineRecord>> {
    // A row is the latest of its name when its version is the name's highest:
    // `version = (SELECT MAX(latest.version) FROM pipelines latest WHERE latest.name = pipelines.name)`.
    let latest = Alias::new("latest");
    let highest = Query::select()
        .expr(Expr::col((latest.clone(), pipeline::Column::Version)).max())
        .from_as(pipeline::Entity, latest.clone())
        .and_where(
            Expr::col((latest.clone(), pipeline::Column::Name)).equals((pipeline::Entity, pipeline::Column::Name)),
        )
        .to_owned();
    let mut query = pipeline::Entity::find()
        .filter(Expr::col((pipeline::Entity, pipeline::Column::Version)).eq(SubQueryStatement::from(highest)))
        .order_by_asc(pipeline::Column::Name)
        .limit(limit);
    if let Some(after_name) = after_name {
        query = query.filter(Expr::col((pipeline::Entity, pipeline::Column::Name)).gt(after_name));
    }
    let models = query.all(&store.db).await.map_err(db_err)?;
    models.into_iter().map(record).collect()
}

/// Deletes every version of a name.
pub(super) async fn delete(store: &SeaStore, name: &str) -> StoreResult<u32> {
    let txn = store.write().await?;
    let deleted = pipeline::Entity::delete_many()
        .filter(Expr::col(pipeline::Column::Name).eq(name))
        .exec(&*txn)
        .await
        .map_err(db_err)?;
    txn.commit().await?;
    u32::try_from(deleted.rows_affected)
        .map_err(|_| StoreError::Corrupt(format!("pipelines: {} versions of {name}", deleted.rows_affected)))
}

fn record(model: pipeline::Model) -> StoreResult<PipelineRecord> {
    Ok(PipelineRecord {
        id: model.id,
        name: model.name,
        version: to_u32(model.version, "pipelines.version")?,
        source: model.source,
        file_name: model.file_name,
        definition: from_json(model.definition, "pipelines.definition")?,
        created_at: model.created_at,
        plugins: match model.plugins {
            Some(plugins) => from_json(plugins, "pipelines.plugins")?,
            None => Vec::new(),
        },
    })
}
