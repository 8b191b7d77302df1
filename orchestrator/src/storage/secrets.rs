//! Secrets: sealed values by name and scope. This module never sees a value in the clear;
//! sealing and opening happen in `domain::keyring`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, UpdateMany};
use uuid::Uuid;

use super::codec::{db_err, stored_time};
use super::entity::secret;
use super::store::SeaStore;
use crate::domain::keyring::Sealed;
use crate::domain::secrets::{MAX_SECRETS, Scope, SecretInfo, SecretRow, SecretStore};
use crate::domain::store::StoreResult;

#[async_trait]
impl SecretStore for SeaStore {
    async fn put_secret(
        &self,
        name: &str,
        scope: &Scope,
        sealed: &Sealed,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<(SecretInfo, bool)>> {
        let at = stored_time(at);
        let txn = self.write().await?;
        let existing = secret::Entity::find()
            .filter(secret::Column::Pipeline.eq(scope.as_field()))
            .filter(secret::Column::Name.eq(name))
            .one(&*txn)
            .await
            .map_err(db_err)?;
        let (info, replaced) = match existing {
            Some(row) => {
                with_sealed(secret::Entity::update_many(), sealed)
                    .col_expr(secret::Column::UpdatedAt, Expr::value(at))
                    .filter(secret::Column::Id.eq(row.id))
                    .exec(&*txn)
                    .await
                    .map_err(db_err)?;
                let info = SecretInfo {
                    name: name.to_owned(),
                    scope: scope.clone(),
                    created_at: row.created_at,
                    updated_at: at,
                };
                (info, true)
            }
            None => {
                if secret::Entity::find().count(&*txn).await.map_err(db_err)? >= MAX_SECRETS {
                    return Ok(None);
                }
                let model = secret::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    name: Set(name.to_owned()),
                    pipeline: Set(scope.as_field().to_owned()),
                    key_id: Set(sealed.key_id.clone()),
                    nonce: Set(sealed.nonce.clone()),
                    ciphertext: Set(sealed.ciphertext.clone()),
                    created_at: Set(at),
                    updated_at: Set(at),
                };
                secret::Entity::insert(model).exec_without_returning(&*txn).await.map_err(db_err)?;
                (SecretInfo { name: name.to_owned(), scope: scope.clone(), created_at: at, updated_at: at }, false)
            }
        };
        txn.commit().await?;
        Ok(Some((info, replaced)))
    }

    async fn list_secrets(&self, scope: Option<&Scope>) -> StoreResult<Vec<SecretInfo>> {
        let mut query = secret::Entity::find();
        if let Some(scope) = scope {
            query = query.filter(secret::Column::Pipeline.eq(scope.as_field()));
        }
        let models = query
            .order_by_asc(secret::Column::Pipeline)
            .order_by_asc(secret::Column::Name)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        Ok(models.into_iter().map(|model| decode(model).info).collect())
    }

    async fn delete_secret(&self, name: &str, scope: &Scope) -> StoreResult<bool> {
        let txn = self.write().await?;
        let deleted = secret::Entity::delete_many()
            .filter(secret::Column::Pipeline.eq(scope.as_field()))
            .filter(secret::Column::Name.eq(name))
            .exec(&*txn)
            .await
            .map_err(db_err)?;
        txn.commit().await?;
        Ok(deleted.rows_affected > 0)
    }

    async fn visible_secrets(&self, pipeline: &str, names: &[String]) -> StoreResult<Vec<SecretRow>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let models = secret::Entity::find()
            .filter(secret::Column::Name.is_in(names.iter().cloned()))
            .filter(Condition::any().add(secret::Column::Pipeline.eq("")).add(secret::Column::Pipeline.eq(pipeline)))
            .all(&self.db)
            .await
            .map_err(db_err)?;
        Ok(models.into_iter().map(decode).collect())
    }

    async fn secret_rows(&self) -> StoreResult<Vec<SecretRow>> {
        let models = secret::Entity::find().order_by_asc(secret::Column::Id).all(&self.db).await.map_err(db_err)?;
        Ok(models.into_iter().map(decode).collect())
    }

    async fn reseal_secret(&self, id: Uuid, old: &Sealed, new: &Sealed) -> StoreResult<bool> {
        let txn = self.write().await?;
        // Compare and swap: a value set again since it was read is left as it is.
        let updated = with_sealed(secret::Entity::update_many(), new)
            .filter(secret::Column::Id.eq(id))
            .filter(secret::Column::KeyId.eq(old.key_id.clone()))
            .filter(secret::Column::Nonce.eq(old.nonce.clone()))
            .exec(&*txn)
            .await
            .map_err(db_err)?;
        txn.commit().await?;
        Ok(updated.rows_affected == 1)
    }
}

/// `update` setting the sealed value's columns.
fn with_sealed(update: UpdateMany<secret::Entity>, sealed: &Sealed) -> UpdateMany<secret::Entity> {
    update
        .col_expr(secret::Column::KeyId, Expr::value(sealed.key_id.clone()))
        .col_expr(secret::Column::Nonce, Expr::value(sealed.nonce.clone()))
        .col_expr(secret::Column::Ciphertext, Expr::value(sealed.ciphertext.clone()))
}

fn decode(model: secret::Model) -> SecretRow {
    SecretRow {
        id: model.id,
        info: SecretInfo {
            name: model.name,
            scope: Scope::from_field(&model.pipeline),
            created_at: model.created_at,
            updated_at: model.updated_at,
        },
        sealed: Sealed { key_id: model.key_id, nonce: model.nonce, ciphertext: model.ciphertext },
    }
}
