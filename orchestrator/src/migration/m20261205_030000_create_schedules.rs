//! `schedules`: cron schedules that launch a pipeline (by name: its latest version at each
//! fire) with fixed inputs; `last_due` is the latest due time handled (fired or skipped),
//! set to the creation time at creation so that nothing before it fires. `schedule_fires`:
//! one row per due time fired, unique by (schedule, due), so that two replicas ticking the
//! same minute start one job between them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Schedules {
    Table,
    Id,
    Pipeline,
    Cron,
    TimeZone,
    Inputs,
    Missed,
    Paused,
    LastDue,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ScheduleFires {
    Table,
    ScheduleId,
    Due,
    JobId,
    FiredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Schedules::Table)
                    .col(uuid(Schedules::Id).primary_key())
                    .col(text(Schedules::Pipeline))
                    .col(text(Schedules::Cron))
                    .col(text(Schedules::TimeZone))
                    .col(json_binary(Schedules::Inputs))
                    .col(text(Schedules::Missed))
                    .col(boolean(Schedules::Paused))
                    .col(timestamp_with_time_zone(Schedules::LastDue))
                    .col(timestamp_with_time_zone(Schedules::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // The primary key is the UNIQUE (schedule_id, due) that makes a fire happen once.
        manager
            .create_table(
                Table::create()
                    .table(ScheduleFires::Table)
                    .col(uuid(ScheduleFires::ScheduleId))
                    .col(timestamp_with_time_zone(ScheduleFires::Due))
                    .col(uuid_null(ScheduleFires::JobId))
                    .col(timestamp_with_time_zone(ScheduleFires::FiredAt))
                    .primary_key(Index::create().col(ScheduleFires::ScheduleId).col(ScheduleFires::Due))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ScheduleFires::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Schedules::Table).to_owned()).await
    }
}
