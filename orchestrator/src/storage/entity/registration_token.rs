//! A registration token: the hash of its secret, the labels it grants, its limits.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "registration_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The SHA-256 of the token's secret, in hex.
    #[sea_orm(column_type = "Text")]
    pub secret_hash: String,
    /// The labels granted, as a JSON object of key → value.
    #[sea_orm(column_type = "JsonBinary")]
    pub labels: Json,
    /// How many more runners may register with it; `None` for no limit.
    pub uses_left: Option<i32>,
    pub expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
