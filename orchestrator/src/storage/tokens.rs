//! API tokens: stored by hash, found by id, revoked by marking (never deleted, so the
//! table never empties again once a token exists).

use chrono::{DateTime, Utc};
use sea_orm::ColumnTrait;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::codec::{db_err, parse, stored_time};
use super::entity::api_token;
use super::store::SeaStore;
use crate::domain::access::LAST_USE_PRECISION;
use crate::domain::store::{ApiTokenRecord, StoreError, StoreResult};
use crate::domain::tokens::TokenDigest;

/// Stores a new token.
pub(super) async fn create(store: &SeaStore, record: &ApiTokenRecord) -> StoreResult<()> {
    let model = api_token::ActiveModel {
        id: Set(record.id),
        name: Set(record.name.clone()),
        role: Set(record.role.as_str().to_owned()),
        secret_sha256: Set(record.digest.to_hex()),
        created_at: Set(stored_time(record.created_at)),
        last_used_at: Set(record.last_used_at.map(stored_time)),
        expires_at: Set(record.expires_at.map(stored_time)),
        revoked_at: Set(record.revoked_at.map(stored_time)),
    };
    let txn = store.write().await?;
    api_token::Entity::insert(model).exec_without_returning(&*txn).await.map_err(db_err)?;
    txn.commit().await
}

/// A token by id.
pub(super) async fn by_id(store: &SeaStore, id: Uuid) -> StoreResult<Option<ApiTokenRecord>> {
    let model = api_token::Entity::find_by_id(id).one(&store.db).await.map_err(db_err)?;
    model.map(decode).transpose()
}

/// Every token, oldest first.
pub(super) async fn all(store: &SeaStore) -> StoreResult<Vec<ApiTokenRecord>> {
    let models = api_token::Entity::find()
        .order_by_asc(api_token::Column::CreatedAt)
        .order_by_asc(api_token::Column::Id)
        .all(&store.db)
        .await
        .map_err(db_err)?;
    models.into_iter().map(decode).collect()
}

/// Whether any token exists, revoked or not.
pub(super) async fn any(store: &SeaStore) -> StoreResult<bool> {
    let count = api_token::Entity::find().select_only().column(api_token::Column::Id).limit(1).count(&store.db);
    Ok(count.await.map_err(db_err)? > 0)
}

/// Marks a token revoked at `at` unless it already is.
pub(super) async fn revoke(store: &SeaStore, id: Uuid, at: DateTime<Utc>) -> StoreResult<Option<ApiTokenRecord>> {
    let txn = store.write().await?;
    api_token::Entity::update_many()
        .col_expr(api_token::Column::RevokedAt, Expr::value(stored_time(at)))
        .filter(api_token::Column::Id.eq(id))
        .filter(api_token::Column::RevokedAt.is_null())
        .exec(&*txn)
        .await
        .map_err(db_err)?;
    let model = api_token::Entity::find_by_id(id).one(&*txn).await.map_err(db_err)?;
    txn.commit().await?;
    model.map(decode).transpose()
}

/// Records a use of a token.
pub(super) async fn touch(store: &SeaStore, id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
    let txn = store.write().await?;
    api_token::Entity::update_many()
        .col_expr(api_token::Column::LastUsedAt, Expr::value(stored_time(at)))
        .filter(api_token::Column::Id.eq(id))
        // Calls that all saw the same stale time write once, not once each.
        .filter(
            sea_orm::Condition::any()
                .add(api_token::Column::LastUsedAt.is_null())
                .add(api_token::Column::LastUsedAt.lte(stored_time(at - LAST_USE_PRECISION))),
        )
        .exec(&*txn)
        .await
        .map_err(db_err)?;
    txn.commit().await
}

fn decode(model: api_token::Model) -> StoreResult<ApiTokenRecord> {
    let digest = TokenDigest::from_hex(&model.secret_sha256)
        .ok_or_else(|| StoreError::Corrupt("api_tokens.secret_sha256: not 64 hex digits".to_owned()))?;
    Ok(ApiTokenRecord {
        id: model.id,
        name: model.name,
        role: parse(&model.role, "api_tokens.role")?,
        digest,
        created_at: model.created_at,
        last_used_at: model.last_used_at,
        expires_at: model.expires_at,
        revoked_at: model.revoked_at,
    })
}
