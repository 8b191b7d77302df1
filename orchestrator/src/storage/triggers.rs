//! Triggers: their pipeline, forge, filter and fixed inputs, with the webhook secret sealed
//! (this module never sees it in the clear; sealing happens in `domain::keyring`).

use std::collections::BTreeMap;

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::codec::{db_err, from_json, parse, stored_time, to_json};
use super::entity::trigger;
use super::store::SeaStore;
use crate::domain::keyring::Sealed;
use crate::domain::store::StoreResult;
use crate::domain::triggers::{MAX_TRIGGERS, TriggerRecord, TriggerRow};

/// Stores a new trigger; `false` when [`MAX_TRIGGERS`] are stored already.
pub(super) async fn create(store: &SeaStore, row: &TriggerRow) -> StoreResult<bool> {
    let record = &row.record;
    let model = trigger::ActiveModel {
        id: Set(record.id),
        pipeline: Set(record.pipeline.clone()),
        forge: Set(record.forge.as_str().to_owned()),
        repository: Set(record.repository.clone()),
        filter: Set(to_json(&record.filter, "triggers.filter")?),
        inputs: Set(to_json(&record.inputs, "triggers.inputs")?),
        status: Set(record.status.as_ref().map(|status| to_json(status, "triggers.status")).transpose()?),
        key_id: Set(row.sealed.key_id.clone()),
        nonce: Set(row.sealed.nonce.clone()),
        ciphertext: Set(row.sealed.ciphertext.clone()),
        created_at: Set(stored_time(record.created_at)),
    };
    let txn = store.write().await?;
    if trigger::Entity::find().count(&*txn).await.map_err(db_err)? >= MAX_TRIGGERS {
        return Ok(false);
    }
    trigger::Entity::insert(model).exec_without_returning(&*txn).await.map_err(db_err)?;
    txn.commit().await?;
    Ok(true)
}

/// A trigger by id, with its sealed secret.
pub(super) async fn by_id(store: &SeaStore, id: Uuid) -> StoreResult<Option<TriggerRow>> {
    let model = trigger::Entity::find_by_id(id).one(&store.db).await.map_err(db_err)?;
    model.map(decode).transpose()
}

/// Every trigger, oldest first, without secrets.
pub(super) async fn all(store: &SeaStore) -> StoreResult<Vec<TriggerRecord>> {
    let models = trigger::Entity::find()
        .order_by_asc(trigger::Column::CreatedAt)
        .order_by_asc(trigger::Column::Id)
        .all(&store.db)
        .await
        .map_err(db_err)?;
    models.into_iter().map(|model| decode(model).map(|row| row.record)).collect()
}

/// Deletes a trigger; `false` when there was none.
pub(super) async fn delete(store: &SeaStore, id: Uuid) -> StoreResult<bool> {
    let txn = store.write().await?;
    let deleted = trigger::Entity::delete_by_id(id).exec(&*txn).await.map_err(db_err)?;
    txn.commit().await?;
    Ok(deleted.rows_affected > 0)
}

/// Every trigger with its sealed secret, by id.
pub(super) async fn rows(store: &SeaStore) -> StoreResult<Vec<TriggerRow>> {
    let models = trigger::Entity::find().order_by_asc(trigger::Column::Id).all(&store.db).await.map_err(db_err)?;
    models.into_iter().map(decode).collect()
}

/// Replaces the sealed secret of `id` if it still holds `old`.
pub(super) async fn reseal(store: &SeaStore, id: Uuid, old: &Sealed, new: &Sealed) -> StoreResult<bool> {
    let txn = store.write().await?;
    // Compare and swap, as for secrets: a row changed since it was read is left alone.
    let updated = trigger::Entity::update_many()
        .col_expr(trigger::Column::KeyId, Expr::value(new.key_id.clone()))
        .col_expr(trigger::Column::Nonce, Expr::value(new.nonce.clone()))
        .col_expr(trigger::Column::Ciphertext, Expr::value(new.ciphertext.clone()))
        .filter(trigger::Column::Id.eq(id))
        .filter(trigger::Column::KeyId.eq(old.key_id.clone()))
        .filter(trigger::Column::Nonce.eq(old.nonce.clone()))
        .exec(&*txn)
        .await
        .map_err(db_err)?;
    txn.commit().await?;
    Ok(updated.rows_affected == 1)
}

fn decode(model: trigger::Model) -> StoreResult<TriggerRow> {
    let inputs: BTreeMap<String, String> = from_json(model.inputs, "triggers.inputs")?;
    let record = TriggerRecord {
        id: model.id,
        pipeline: model.pipeline,
        forge: parse(&model.forge, "triggers.forge")?,
        repository: model.repository,
        filter: from_json(model.filter, "triggers.filter")?,
        inputs,
        status: model.status.map(|status| from_json(status, "triggers.status")).transpose()?,
        created_at: model.created_at,
    };
    let sealed = Sealed { key_id: model.key_id, nonce: model.nonce, ciphertext: model.ciphertext };
    Ok(TriggerRow { record, sealed })
}
