//! `secrets`: the values pipelines declare, sealed (XChaCha20-Poly1305) under the key
//! named by `key_id`; no column holds a value in the clear. `pipeline` is the scope: a
//! pipeline name, or empty for a global secret.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Secrets {
    Table,
    Id,
    Name,
    Pipeline,
    KeyId,
    Nonce,
    Ciphertext,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Secrets::Table)
                    .col(uuid(Secrets::Id).primary_key())
                    .col(text(Secrets::Name))
                    .col(text(Secrets::Pipeline))
                    .col(text(Secrets::KeyId))
                    .col(blob(Secrets::Nonce))
                    .col(blob(Secrets::Ciphertext))
                    .col(timestamp_with_time_zone(Secrets::CreatedAt))
                    .col(timestamp_with_time_zone(Secrets::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // One secret per name and scope; also serves a pipeline's lookups at dispatch.
        manager
            .create_index(
                Index::create()
                    .name("secrets_pipeline_name")
                    .table(Secrets::Table)
                    .col(Secrets::Pipeline)
                    .col(Secrets::Name)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Secrets::Table).to_owned()).await
    }
}
