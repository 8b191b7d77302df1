//! `plugins`: every published version of every plugin, unique by (name, version), found by
//! content hash too; and `pipelines.plugins`, the pins a pipeline version took at creation
//! (a JSON list of `rivet_core::plugin::PluginPin`, null for none).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Plugins {
    Table,
    Id,
    Name,
    Version,
    Sha256,
    Source,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Pipelines {
    Table,
    Plugins,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Plugins::Table)
                    .col(uuid(Plugins::Id).primary_key())
                    .col(text(Plugins::Name))
                    .col(text(Plugins::Version))
                    .col(text(Plugins::Sha256))
                    .col(text(Plugins::Source))
                    .col(timestamp_with_time_zone(Plugins::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("plugins_name_version")
                    .table(Plugins::Table)
                    .col(Plugins::Name)
                    .col(Plugins::Version)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("plugins_name_sha256")
                    .table(Plugins::Table)
                    .col(Plugins::Name)
                    .col(Plugins::Sha256)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Pipelines::Table).add_column(json_binary_null(Pipelines::Plugins)).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Pipelines::Table).drop_column(Pipelines::Plugins).to_owned()).await?;
        manager.drop_table(Table::drop().table(Plugins::Table).to_owned()).await
    }
}
