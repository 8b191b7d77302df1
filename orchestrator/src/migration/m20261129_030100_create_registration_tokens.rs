//! `registration_tokens`: tokens an operator created for new runners to register with.
//! Only a hash of each token's secret is stored; the token itself was shown once.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RegistrationTokens {
    Table,
    Id,
    SecretHash,
    Labels,
    UsesLeft,
    ExpiresAt,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RegistrationTokens::Table)
                    .col(uuid(RegistrationTokens::Id).primary_key())
                    .col(text(RegistrationTokens::SecretHash))
                    .col(json_binary(RegistrationTokens::Labels))
                    .col(integer_null(RegistrationTokens::UsesLeft))
                    .col(timestamp_with_time_zone_null(RegistrationTokens::ExpiresAt))
                    .col(timestamp_with_time_zone(RegistrationTokens::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(RegistrationTokens::Table).to_owned()).await
    }
}
