//! `log_lines`: every stored log line of every job, keyed by (job, sequence) so that a
//! resent line can never be stored twice.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LogLines {
    Table,
    JobId,
    Sequence,
    Attempt,
    At,
    Level,
    Stage,
    Text,
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
                    .table(LogLines::Table)
                    .col(uuid(LogLines::JobId))
                    .col(big_integer(LogLines::Sequence))
                    .col(integer(LogLines::Attempt))
                    .col(timestamp_with_time_zone(LogLines::At))
                    .col(text(LogLines::Level))
                    .col(text(LogLines::Stage))
                    .col(text(LogLines::Text))
                    .primary_key(Index::create().col(LogLines::JobId).col(LogLines::Sequence))
                    .foreign_key(
                        ForeignKey::create()
                            .name("log_lines_job_id")
                            .from(LogLines::Table, LogLines::JobId)
                            .to(Jobs::Table, Jobs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(LogLines::Table).to_owned()).await
    }
}
