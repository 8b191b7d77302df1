//! A commit status waiting to be (or that was) delivered to a forge.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "status_reports")]
pub struct Model {
    /// A UUIDv7: a job's reports are delivered in id order.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub job_id: Uuid,
    /// A `domain::statuses::StatusTarget`, as serde JSON.
    #[sea_orm(column_type = "JsonBinary")]
    pub target: Json,
    /// A `domain::statuses::CommitState` name.
    #[sea_orm(column_type = "Text")]
    pub state: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    /// Held by the replica delivering it until then.
    pub claimed_until: Option<DateTimeUtc>,
    /// Delivered, or given up, at.
    pub delivered_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
