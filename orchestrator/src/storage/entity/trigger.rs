//! A trigger: its pipeline, forge, repository, filter, fixed inputs and sealed webhook
//! secret, never the secret itself.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "triggers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The pipeline's name.
    #[sea_orm(column_type = "Text")]
    pub pipeline: String,
    #[sea_orm(column_type = "Text")]
    pub forge: String,
    #[sea_orm(column_type = "Text")]
    pub repository: String,
    /// The `TriggerFilter`'s patterns.
    #[sea_orm(column_type = "JsonBinary")]
    pub filter: Json,
    /// The fixed inputs, by name.
    #[sea_orm(column_type = "JsonBinary")]
    pub inputs: Json,
    /// A `domain::triggers::StatusReporting`, as serde JSON; null when statuses are off.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub status: Option<Json>,
    /// The id of the key that sealed the secret.
    #[sea_orm(column_type = "Text")]
    pub key_id: String,
    #[sea_orm(column_type = "Blob")]
    pub nonce: Vec<u8>,
    #[sea_orm(column_type = "Blob")]
    pub ciphertext: Vec<u8>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
