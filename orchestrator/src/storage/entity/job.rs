//! A job, with its lease fence (`attempt`, `epoch`) and the highest stored log sequence.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub pipeline_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub pipeline_name: String,
    pub pipeline_version: i32,
    /// The runner tags, as a JSON object of key → value.
    #[sea_orm(column_type = "JsonBinary")]
    pub tags: Json,
    /// A `rivet_core::JobState` name.
    #[sea_orm(column_type = "Text")]
    pub state: String,
    /// A `rivet_core::FailureReason` name.
    #[sea_orm(column_type = "Text", nullable)]
    pub failure_reason: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    /// A `rivet_core::ResolvedInputs`, as serde JSON.
    #[sea_orm(column_type = "JsonBinary")]
    pub inputs: Json,
    pub attempt: i32,
    pub epoch: i64,
    pub max_attempts: i32,
    pub runner_id: Option<Uuid>,
    #[sea_orm(column_type = "Text", nullable, unique)]
    pub idempotency_key: Option<String>,
    /// The outputs, as a JSON object of name → value.
    #[sea_orm(column_type = "JsonBinary")]
    pub outputs: Json,
    pub cancel_requested: bool,
    /// The highest log sequence stored; every line below it is stored too.
    pub log_sequence: i64,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
    /// The launch span's W3C `traceparent`; null when tracing was off.
    #[sea_orm(column_type = "Text", nullable)]
    pub trace_parent: Option<String>,
    /// A `rivet_core::JobOrigin`, as serde JSON; null means an API launch.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub origin: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
