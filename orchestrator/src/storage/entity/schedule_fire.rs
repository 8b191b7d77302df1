//! A due time of a schedule that was fired: unique by (schedule, due).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "schedule_fires")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub schedule_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub due: DateTimeUtc,
    /// The job launched; null until the launch is recorded, or when it failed.
    pub job_id: Option<Uuid>,
    pub fired_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
