//! The commit status outbox (`status_reports`).

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::codec::{db_err, from_json, stored_time, to_json};
use super::entity::status_report;
use super::store::SeaStore;
use crate::domain::statuses::{CommitState, StatusReport, StatusStore, StatusTarget};
use crate::domain::store::{StoreError, StoreResult};

/// How many undelivered reports one claim looks through.
const SCAN: u64 = 512;

#[async_trait]
impl StatusStore for SeaStore {
    async fn add_status_report(
        &self,
        job_id: Uuid,
        target: &StatusTarget,
        state: CommitState,
        description: &str,
    ) -> StoreResult<()> {
        let at = stored_time(Utc::now());
        let row = status_report::ActiveModel {
            id: Set(Uuid::now_v7()),
            job_id: Set(job_id),
            target: Set(to_json(target, "status_reports.target")?),
            state: Set(state.as_str().to_owned()),
            description: Set(description.to_owned()),
            attempts: Set(0),
            next_attempt_at: Set(at),
            claimed_until: Set(None),
            delivered_at: Set(None),
            last_error: Set(None),
            created_at: Set(at),
        };
        let txn = self.write().await?;
        status_report::Entity::insert(row).exec_without_returning(&*txn).await.map_err(db_err)?;
        txn.commit().await?;
        Ok(())
    }

    async fn status_target(&self, job_id: Uuid) -> StoreResult<Option<StatusTarget>> {
        let row = status_report::Entity::find()
            .filter(status_report::Column::JobId.eq(job_id))
            .order_by_asc(status_report::Column::Id)
            .one(&self.db)
            .await
            .map_err(db_err)?;
        row.map(|row| from_json(row.target, "status_reports.target")).transpose()
    }

    async fn claim_status_reports(
        &self,
        now: DateTime<Utc>,
        claim_until: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Vec<StatusReport>> {
        let (now, claim_until) = (stored_time(now), stored_time(claim_until));
        let rows = status_report::Entity::find()
            .filter(status_report::Column::DeliveredAt.is_null())
            .order_by_asc(status_report::Column::Id)
            .limit(SCAN)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        // Each job's oldest undelivered report only: the later ones wait for it.
        let mut seen = HashSet::new();
        let mut claimed = Vec::new();
        for row in rows {
            if !seen.insert(row.job_id) {
                continue;
            }
            let free = row.claimed_until.is_none_or(|until| until < now);
            if row.next_attempt_at > now || !free || claimed.len() as u64 >= limit {
                continue;
            }
            let txn = self.write().await?;
            let won = status_report::Entity::update_many()
                .col_expr(status_report::Column::ClaimedUntil, Expr::value(claim_until))
                .filter(status_report::Column::Id.eq(row.id))
                .filter(status_report::Column::DeliveredAt.is_null())
                .filter(
                    Condition::any()
                        .add(status_report::Column::ClaimedUntil.is_null())
                        .add(status_report::Column::ClaimedUntil.lt(now)),
                )
                .exec(&*txn)
                .await
                .map_err(db_err)?
                .rows_affected
                == 1;
            txn.commit().await?;
            if won {
                claimed.push(StatusReport {
                    id: row.id,
                    job_id: row.job_id,
                    target: from_json(row.target, "status_reports.target")?,
                    state: parse_state(&row.state)?,
                    description: row.description,
                    attempts: u32::try_from(row.attempts).unwrap_or(0),
                });
            }
        }
        Ok(claimed)
    }

    async fn close_status_report(&self, id: Uuid, at: DateTime<Utc>, error: Option<&str>) -> StoreResult<()> {
        let txn = self.write().await?;
        status_report::Entity::update_many()
            .col_expr(status_report::Column::DeliveredAt, Expr::value(stored_time(at)))
            .col_expr(status_report::Column::ClaimedUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(status_report::Column::LastError, Expr::value(error.map(str::to_owned)))
            .filter(status_report::Column::Id.eq(id))
            .exec(&*txn)
            .await
            .map_err(db_err)?;
        txn.commit().await?;
        Ok(())
    }

    async fn retry_status_report(
        &self,
        id: Uuid,
        attempts: u32,
        next_at: DateTime<Utc>,
        error: &str,
    ) -> StoreResult<()> {
        let txn = self.write().await?;
        status_report::Entity::update_many()
            .col_expr(status_report::Column::Attempts, Expr::value(i32::try_from(attempts).unwrap_or(i32::MAX)))
            .col_expr(status_report::Column::NextAttemptAt, Expr::value(stored_time(next_at)))
            .col_expr(status_report::Column::ClaimedUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(status_report::Column::LastError, Expr::value(error.to_owned()))
            .filter(status_report::Column::Id.eq(id))
            .exec(&*txn)
            .await
            .map_err(db_err)?;
        txn.commit().await?;
        Ok(())
    }
}

fn parse_state(text: &str) -> StoreResult<CommitState> {
    match text {
        "pending" => Ok(CommitState::Pending),
        "success" => Ok(CommitState::Success),
        "failure" => Ok(CommitState::Failure),
        "cancelled" => Ok(CommitState::Cancelled),
        "error" => Ok(CommitState::Error),
        other => Err(StoreError::Corrupt(format!("status_reports.state: unknown state `{other}`"))),
    }
}
