//! Runner identity: registration tokens (hashed, with a use count and an expiry) and the
//! credentials of registered runners (hashed, revocable).
//!
//! Secrets never reach the database: callers pass the SHA-256 of a secret, and a stored
//! hash is compared with a presented one in constant time (`subtle`).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, IntoActiveModel, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::codec::{db_err, from_json, from_u32, stored_time, to_json};
use super::entity::{registration_token, runner, runner_credential};
use super::store::SeaStore;
use crate::domain::identity::hashes_match;
use crate::domain::store::{NewRegistrationToken, Redemption, RunnerCredential, RunnerRecord, StoreResult};

/// Stores a new registration token.
pub(super) async fn create_token(store: &SeaStore, token: &NewRegistrationToken) -> StoreResult<()> {
    let uses = token.uses.map(|uses| from_u32(uses, "registration_tokens.uses_left")).transpose()?;
    let model = registration_token::ActiveModel {
        id: Set(token.id),
        secret_hash: Set(token.secret_hash.clone()),
        labels: Set(to_json(&token.labels, "registration_tokens.labels")?),
        uses_left: Set(uses),
        expires_at: Set(token.expires_at.map(stored_time)),
        created_at: Set(super::codec::now()),
    };
    let txn = store.write().await?;
    registration_token::Entity::insert(model).exec_without_returning(&*txn).await.map_err(db_err)?;
    txn.commit().await
}

/// Checks a presented token under the row's lock and counts one use.
pub(super) async fn redeem_token(
    store: &SeaStore,
    id: Uuid,
    secret_hash: &str,
    at: DateTime<Utc>,
) -> StoreResult<Redemption> {
    // A caller without the secret gets no lock: the writer lock (SQLite's, and the row
    // lock on PostgreSQL) is taken only once the hash matches, so forged tokens cannot
    // stall every other write. The check repeats under the lock, which decides.
    let unlocked = registration_token::Entity::find_by_id(id).one(&store.db).await.map_err(db_err)?;
    if !unlocked.is_some_and(|model| hashes_match(&model.secret_hash, secret_hash)) {
        return Ok(Redemption::Unknown);
    }
    let txn = store.write().await?;
    let Some(model) = registration_token::Entity::find_by_id(id).lock_exclusive().one(&*txn).await.map_err(db_err)?
    else {
        return Ok(Redemption::Unknown);
    };
    if !hashes_match(&model.secret_hash, secret_hash) {
        return Ok(Redemption::Unknown);
    }
    if let Some(expires_at) = model.expires_at
        && expires_at <= at
    {
        return Ok(Redemption::Expired(expires_at));
    }
    let labels = from_json(model.labels.clone(), "registration_tokens.labels")?;
    match model.uses_left {
        Some(left) if left <= 0 => return Ok(Redemption::UsedUp),
        Some(left) => {
            let mut active = model.into_active_model();
            active.uses_left = Set(Some(left - 1));
            active.update(&*txn).await.map_err(db_err)?;
        }
        None => {}
    }
    txn.commit().await?;
    Ok(Redemption::Granted(labels))
}

/// Stores a registered runner: its registry row and its credential.
pub(super) async fn register(
    store: &SeaStore,
    record: &RunnerRecord,
    credential: &RunnerCredential,
) -> StoreResult<()> {
    let runner_model = runner::ActiveModel {
        id: Set(record.id),
        name: Set(record.name.clone()),
        labels: Set(to_json(&record.labels, "runners.labels")?),
        capacity: Set(from_u32(record.capacity, "runners.capacity")?),
        version: Set(record.version.clone()),
        last_seen: Set(stored_time(record.last_seen)),
    };
    let credential_model = runner_credential::ActiveModel {
        runner_id: Set(credential.runner_id),
        secret_hash: Set(credential.secret_hash.clone()),
        labels: Set(to_json(&credential.labels, "runner_credentials.labels")?),
        registered_at: Set(stored_time(credential.registered_at)),
        revoked_at: Set(credential.revoked_at.map(stored_time)),
    };
    let txn = store.write().await?;
    runner::Entity::insert(runner_model)
        .on_conflict(OnConflict::column(runner::Column::Id).do_nothing().to_owned())
        .exec_without_returning(&*txn)
        .await
        .map_err(db_err)?;
    runner_credential::Entity::insert(credential_model).exec_without_returning(&*txn).await.map_err(db_err)?;
    txn.commit().await
}

/// One runner's credential.
pub(super) async fn credential(store: &SeaStore, runner: Uuid) -> StoreResult<Option<RunnerCredential>> {
    let model = runner_credential::Entity::find_by_id(runner).one(&store.db).await.map_err(db_err)?;
    model.map(decode).transpose()
}

/// Every credential, oldest registration first.
pub(super) async fn credentials(store: &SeaStore) -> StoreResult<Vec<RunnerCredential>> {
    let models = runner_credential::Entity::find()
        .order_by_asc(runner_credential::Column::RegisteredAt)
        .all(&store.db)
        .await
        .map_err(db_err)?;
    models.into_iter().map(decode).collect()
}

/// Marks a credential revoked, keeping the first revocation time.
pub(super) async fn revoke(store: &SeaStore, runner: Uuid, at: DateTime<Utc>) -> StoreResult<bool> {
    let txn = store.write().await?;
    let Some(model) =
        runner_credential::Entity::find_by_id(runner).lock_exclusive().one(&*txn).await.map_err(db_err)?
    else {
        return Ok(false);
    };
    if model.revoked_at.is_none() {
        let mut active = model.into_active_model();
        active.revoked_at = Set(Some(stored_time(at)));
        active.update(&*txn).await.map_err(db_err)?;
    }
    txn.commit().await?;
    Ok(true)
}

fn decode(model: runner_credential::Model) -> StoreResult<RunnerCredential> {
    Ok(RunnerCredential {
        runner_id: model.runner_id,
        secret_hash: model.secret_hash,
        labels: from_json(model.labels, "runner_credentials.labels")?,
        registered_at: model.registered_at,
        revoked_at: model.revoked_at,
    })
}
