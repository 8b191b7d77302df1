//! `triggers`: forge webhooks that launch a pipeline. `filter` holds the trigger's patterns
//! as `rivet_core::trigger::TriggerFilter` serialises them, `inputs` its fixed inputs. The
//! webhook secret is sealed as secrets are (`key_id`, `nonce`, `ciphertext`): it has to be
//! recovered to check a delivery's HMAC, so it cannot be a hash.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Triggers {
    Table,
    Id,
    Pipeline,
    Forge,
    Repository,
    Filter,
    Inputs,
    Status,
    KeyId,
    Nonce,
    Ciphertext,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Triggers::Table)
                    .col(uuid(Triggers::Id).primary_key())
                    .col(text(Triggers::Pipeline))
                    .col(text(Triggers::Forge))
                    .col(text(Triggers::Repository))
                    .col(json_binary(Triggers::Filter))
                    .col(json_binary(Triggers::Inputs))
                    .col(json_binary_null(Triggers::Status))
                    .col(text(Triggers::KeyId))
                    .col(blob(Triggers::Nonce))
                    .col(blob(Triggers::Ciphertext))
                    .col(timestamp_with_time_zone(Triggers::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Triggers::Table).to_owned()).await
    }
}
