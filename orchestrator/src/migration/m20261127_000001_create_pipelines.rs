//! `pipelines`: every stored version of every pipeline, unique by (name, version).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Pipelines {
    Table,
    Id,
    Name,
    Version,
    Source,
    FileName,
    Definition,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Pipelines::Table)
                    .col(uuid(Pipelines::Id).primary_key())
                    .col(text(Pipelines::Name))
                    .col(integer(Pipelines::Version))
                    .col(text(Pipelines::Source))
                    .col(text(Pipelines::FileName))
                    .col(json_binary(Pipelines::Definition))
                    .col(timestamp_with_time_zone(Pipelines::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // Also serves "latest version of a name" and "names in order" lookups.
        manager
            .create_index(
                Index::create()
                    .name("pipelines_name_version")
                    .table(Pipelines::Table)
                    .col(Pipelines::Name)
                    .col(Pipelines::Version)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Pipelines::Table).to_owned()).await
    }
}
