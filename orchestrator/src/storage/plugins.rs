//! Plugin versions: unique by (name, version), found by content hash too.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr};
use uuid::Uuid;

use super::codec::{db_err, now};
use super::entity::plugin;
use super::store::{Backend, SeaStore};
use crate::domain::store::{NewPlugin, PluginRecord, PluginVersion, StoreResult};

/// Stores `new`, or returns the version already stored under its name and version.
pub(super) async fn publish(store: &SeaStore, new: NewPlugin) -> StoreResult<(PluginRecord, bool)> {
    let record = PluginRecord {
        sha256: rivet_core::plugin::sha256(&new.source),
        name: new.name,
        version: new.version,
        source: new.source,
        created_at: now(),
    };
    let model = plugin::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(record.name.clone()),
        version: Set(record.version.clone()),
        sha256: Set(record.sha256.clone()),
        source: Set(record.source.clone()),
        created_at: Set(record.created_at),
    };
    let txn = store.write().await?;
    match plugin::Entity::insert(model).exec_without_returning(&*txn).await {
        Ok(_) => {
            txn.commit().await?;
            Ok((record, true))
        }
        Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            drop(txn);
            let stored = find(store, &record.name, Some(&record.version), None).await?;
            stored.map(|stored| (stored, false)).ok_or_else(|| db_err(err))
        }
        Err(err) => Err(db_err(err)),
    }
}

/// A version by name and version, by content hash, or the latest of a name.
pub(super) async fn find(
    store: &SeaStore,
    name: &str,
    version: Option<&str>,
    sha256: Option<&str>,
) -> StoreResult<Option<PluginRecord>> {
    let mut query = plugin::Entity::find().filter(Expr::col(plugin::Column::Name).eq(name));
    if let Some(version) = version {
        query = query.filter(Expr::col(plugin::Column::Version).eq(version));
    }
    if let Some(sha256) = sha256 {
        query = query.filter(Expr::col(plugin::Column::Sha256).eq(sha256));
    }
    // Ids are UUIDv7: the newest publication sorts last.
    let model = query.order_by_desc(plugin::Column::Id).one(&store.db).await.map_err(db_err)?;
    Ok(model.map(record))
}

/// A listed version as read: name, version, hash, size in bytes, publication time.
type ListedRow = (String, String, String, Option<i64>, DateTime<Utc>);

/// Versions by name, then by publication, without their sources (a listing of many
/// versions would otherwise read up to a megabyte for each).
pub(super) async fn list(store: &SeaStore, name: Option<&str>, limit: u64) -> StoreResult<Vec<PluginVersion>> {
    // Byte lengths, as 64-bit integers: PostgreSQL's and SQLite's `length` count characters.
    let size = match store.backend {
        Backend::Postgres => r#"CAST(octet_length("source") AS BIGINT)"#,
        Backend::Sqlite => r#"length(CAST("source" AS BLOB))"#,
    };
    let mut query = plugin::Entity::find();
    if let Some(name) = name {
        query = query.filter(Expr::col(plugin::Column::Name).eq(name));
    }
    let rows: Vec<ListedRow> = query
        .select_only()
        .column(plugin::Column::Name)
        .column(plugin::Column::Version)
        .column(plugin::Column::Sha256)
        .column_as(Expr::cust(size), "size_bytes")
        .column(plugin::Column::CreatedAt)
        .order_by_asc(plugin::Column::Name)
        .order_by_asc(plugin::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(&store.db)
        .await
        .map_err(db_err)?;
    Ok(rows
        .into_iter()
        .map(|(name, version, sha256, size, created_at)| PluginVersion {
            name,
            version,
            sha256,
            size_bytes: u64::try_from(size.unwrap_or(0)).unwrap_or(0),
            created_at,
        })
        .collect())
}

/// How many versions are stored, of `name` or of every plugin.
pub(super) async fn count(store: &SeaStore, name: Option<&str>) -> StoreResult<u64> {
    let mut query = plugin::Entity::find();
    if let Some(name) = name {
        query = query.filter(Expr::col(plugin::Column::Name).eq(name));
    }
    query.count(&store.db).await.map_err(db_err)
}

fn record(model: plugin::Model) -> PluginRecord {
    PluginRecord {
        name: model.name,
        version: model.version,
        sha256: model.sha256,
        source: model.source,
        created_at: model.created_at,
    }
}
