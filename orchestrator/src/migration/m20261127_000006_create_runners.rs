//! `runners`: every runner the registry has seen.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Runners {
    Table,
    Id,
    Name,
    Labels,
    Capacity,
    Version,
    LastSeen,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Runners::Table)
                    .col(uuid(Runners::Id).primary_key())
                    .col(text(Runners::Name))
                    .col(json_binary(Runners::Labels))
                    .col(integer(Runners::Capacity))
                    .col(text(Runners::Version))
                    .col(timestamp_with_time_zone(Runners::LastSeen))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Runners::Table).to_owned()).await
    }
}
