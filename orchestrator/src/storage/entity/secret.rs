//! A secret: its name, scope and sealed value, never the value itself.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "secrets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    /// The pipeline it belongs to; empty for a global secret.
    #[sea_orm(column_type = "Text")]
    pub pipeline: String,
    /// The id of the key that sealed it.
    #[sea_orm(column_type = "Text")]
    pub key_id: String,
    #[sea_orm(column_type = "Blob")]
    pub nonce: Vec<u8>,
    #[sea_orm(column_type = "Blob")]
    pub ciphertext: Vec<u8>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
