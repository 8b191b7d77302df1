//! `status_reports`: the outbox of commit statuses (see `domain::statuses`), found by job
//! and by what is still to deliver.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StatusReports {
    Table,
    Id,
    JobId,
    Target,
    State,
    Description,
    Attempts,
    NextAttemptAt,
    ClaimedUntil,
    DeliveredAt,
    LastError,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StatusReports::Table)
                    .col(uuid(StatusReports::Id).primary_key())
                    .col(uuid(StatusReports::JobId))
                    .col(json_binary(StatusReports::Target))
                    .col(text(StatusReports::State))
                    .col(text(StatusReports::Description))
                    .col(integer(StatusReports::Attempts))
                    .col(timestamp_with_time_zone(StatusReports::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(StatusReports::ClaimedUntil))
                    .col(timestamp_with_time_zone_null(StatusReports::DeliveredAt))
                    .col(text_null(StatusReports::LastError))
                    .col(timestamp_with_time_zone(StatusReports::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("status_reports_job")
                    .table(StatusReports::Table)
                    .col(StatusReports::JobId)
                    .col(StatusReports::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("status_reports_pending")
                    .table(StatusReports::Table)
                    .col(StatusReports::DeliveredAt)
                    .col(StatusReports::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(StatusReports::Table).to_owned()).await
    }
}
