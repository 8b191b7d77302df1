//! `jobs.trace_parent`: the W3C `traceparent` of the span that launched the job, so that
//! every replica that later dispatches or finishes it adds its spans to the same trace
//! (null when tracing was off at launch); and `jobs.origin`: what started the job, a JSON
//! `rivet_core::JobOrigin` (null for jobs launched before it was recorded: an API call).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    TraceParent,
    Origin,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Jobs::Table).add_column(text_null(Jobs::TraceParent)).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(Jobs::Table).add_column(json_binary_null(Jobs::Origin)).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Jobs::Table).drop_column(Jobs::Origin).to_owned()).await?;
        manager.alter_table(Table::alter().table(Jobs::Table).drop_column(Jobs::TraceParent).to_owned()).await
    }
}
