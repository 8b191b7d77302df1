//! `job_stages`: the stages of a job as its runner reported them, one row per (job, name).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JobStages {
    Table,
    JobId,
    Name,
    Position,
    State,
    StartedAt,
    FinishedAt,
    FailureReason,
    Message,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(JobStages::Table)
                    .col(uuid(JobStages::JobId))
                    .col(text(JobStages::Name))
                    .col(integer(JobStages::Position))
                    .col(text(JobStages::State))
                    .col(timestamp_with_time_zone_null(JobStages::StartedAt))
                    .col(timestamp_with_time_zone_null(JobStages::FinishedAt))
                    .col(text_null(JobStages::FailureReason))
                    .col(text(JobStages::Message))
                    .primary_key(Index::create().col(JobStages::JobId).col(JobStages::Name))
                    .foreign_key(
                        ForeignKey::create()
                            .name("job_stages_job_id")
                            .from(JobStages::Table, JobStages::JobId)
                            .to(Jobs::Table, Jobs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(JobStages::Table).to_owned()).await
    }
}
