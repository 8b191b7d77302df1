//! `job_transitions`: every state a job entered, in insertion order.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JobTransitions {
    Table,
    Id,
    JobId,
    State,
    At,
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
                    .table(JobTransitions::Table)
                    // The auto-increment id orders a job's transitions even when two share a
                    // timestamp.
                    .col(big_pk_auto(JobTransitions::Id))
                    .col(uuid(JobTransitions::JobId))
                    .col(text(JobTransitions::State))
                    .col(timestamp_with_time_zone(JobTransitions::At))
                    .col(text(JobTransitions::Message))
                    .foreign_key(
                        ForeignKey::create()
                            .name("job_transitions_job_id")
                            .from(JobTransitions::Table, JobTransitions::JobId)
                            .to(Jobs::Table, Jobs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("job_transitions_job_id_id")
                    .table(JobTransitions::Table)
                    .col(JobTransitions::JobId)
                    .col(JobTransitions::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(JobTransitions::Table).to_owned()).await
    }
}
