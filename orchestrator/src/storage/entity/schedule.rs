//! A cron schedule: which pipeline it launches, when, with which inputs, and the latest
//! due time handled.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "schedules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The pipeline's name: each fire launches its latest version.
    #[sea_orm(column_type = "Text")]
    pub pipeline: String,
    #[sea_orm(column_type = "Text")]
    pub cron: String,
    /// An IANA time zone name.
    #[sea_orm(column_type = "Text")]
    pub time_zone: String,
    /// The raw inputs, as a JSON object of name → string.
    #[sea_orm(column_type = "JsonBinary")]
    pub inputs: Json,
    /// A `rivet_core::schedule::MissedPolicy` name: `skip` or `run-once`.
    #[sea_orm(column_type = "Text")]
    pub missed: String,
    pub paused: bool,
    /// The latest due time handled, fired or skipped.
    pub last_due: DateTimeUtc,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
