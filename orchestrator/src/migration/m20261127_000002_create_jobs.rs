//! `jobs`: one row per job, with what dispatch needs copied from its pipeline version
//! (name, version, runner tags) so that jobs outlive a deleted pipeline.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    PipelineId,
    PipelineName,
    PipelineVersion,
    Tags,
    State,
    FailureReason,
    Message,
    Inputs,
    Attempt,
    Epoch,
    MaxAttempts,
    RunnerId,
    IdempotencyKey,
    Outputs,
    CancelRequested,
    LogSequence,
    CreatedAt,
    StartedAt,
    FinishedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .col(uuid(Jobs::Id).primary_key())
                    .col(uuid(Jobs::PipelineId))
                    .col(text(Jobs::PipelineName))
                    .col(integer(Jobs::PipelineVersion))
                    .col(json_binary(Jobs::Tags))
                    .col(text(Jobs::State))
                    .col(text_null(Jobs::FailureReason))
                    .col(text(Jobs::Message))
                    .col(json_binary(Jobs::Inputs))
                    .col(integer(Jobs::Attempt))
                    .col(big_integer(Jobs::Epoch))
                    .col(integer(Jobs::MaxAttempts))
                    .col(uuid_null(Jobs::RunnerId))
                    .col(text_null(Jobs::IdempotencyKey).unique_key())
                    .col(json_binary(Jobs::Outputs))
                    .col(boolean(Jobs::CancelRequested))
                    .col(big_integer(Jobs::LogSequence))
                    .col(timestamp_with_time_zone(Jobs::CreatedAt))
                    .col(timestamp_with_time_zone_null(Jobs::StartedAt))
                    .col(timestamp_with_time_zone_null(Jobs::FinishedAt))
                    .col(timestamp_with_time_zone(Jobs::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // The claim scan: queued jobs, oldest first.
        manager
            .create_index(
                Index::create()
                    .name("jobs_state_created_at")
                    .table(Jobs::Table)
                    .col(Jobs::State)
                    .col(Jobs::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // Listing the jobs of one pipeline, newest first.
        manager
            .create_index(
                Index::create()
                    .name("jobs_pipeline_name_created_at")
                    .table(Jobs::Table)
                    .col(Jobs::PipelineName)
                    .col(Jobs::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // Listing every job, newest first.
        manager
            .create_index(
                Index::create()
                    .name("jobs_created_at_id")
                    .table(Jobs::Table)
                    .col(Jobs::CreatedAt)
                    .col(Jobs::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Jobs::Table).to_owned()).await
    }
}
