//! A registered runner's credential: the hash of its secret and the labels it was granted.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "runner_credentials")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub runner_id: Uuid,
    /// The SHA-256 of the credential's secret, in hex.
    #[sea_orm(column_type = "Text")]
    pub secret_hash: String,
    /// The labels granted, as a JSON object of key → value.
    #[sea_orm(column_type = "JsonBinary")]
    pub labels: Json,
    pub registered_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
