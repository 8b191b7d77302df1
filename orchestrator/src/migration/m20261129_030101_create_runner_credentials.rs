//! `runner_credentials`: the credential of each registered runner (a hash of its secret),
//! the labels its registration granted, and when it was revoked.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RunnerCredentials {
    Table,
    RunnerId,
    SecretHash,
    Labels,
    RegisteredAt,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RunnerCredentials::Table)
                    .col(uuid(RunnerCredentials::RunnerId).primary_key())
                    .col(text(RunnerCredentials::SecretHash))
                    .col(json_binary(RunnerCredentials::Labels))
                    .col(timestamp_with_time_zone(RunnerCredentials::RegisteredAt))
                    .col(timestamp_with_time_zone_null(RunnerCredentials::RevokedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(RunnerCredentials::Table).to_owned()).await
    }
}
