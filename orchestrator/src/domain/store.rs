//! The storage contract: everything the orchestrator keeps in its database.
//!
//! One implementation, `storage::SeaStore`, serves PostgreSQL (distributed mode) and SQLite
//! (embedded mode) through sea-orm; the same test suite runs against both. Every method
//! that changes a job's state is *fenced*: it names the epoch it expects, and does nothing
//! (returning `Ok(None)`/`Ok(false)`) when the job has moved on to another assignment.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rivet_core::plugin::PluginPin;
use rivet_core::trace::TraceParent;
use rivet_core::{
    Assignment, FailureReason, JobOrigin, JobState, LogLine, PipelineDefinition, ResolvedInputs, StageState,
};
use uuid::Uuid;

use crate::domain::schedules::ScheduleRecord;
use crate::domain::secrets::SecretStore;
use crate::domain::statuses::StatusStore;
use crate::domain::tokens::{Role, TokenDigest};

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an error.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A stored value could not be decoded (e.g. an unknown state name).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// Shorthand for storage results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A pipeline version to store.
#[derive(Debug, Clone)]
pub struct NewPipeline {
    /// From the definition; versions are numbered per name.
    pub name: String,
    /// The Lua source.
    pub source: String,
    /// The file name used in diagnostics.
    pub file_name: String,
    /// The validated definition.
    pub definition: PipelineDefinition,
    /// The plugins the definition names, pinned to their content.
    pub plugins: Vec<PluginPin>,
}

/// A plugin version to store.
#[derive(Debug, Clone)]
pub struct NewPlugin {
    /// The plugin's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The Lua source.
    pub source: String,
}

/// A stored plugin version.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginRecord {
    /// The plugin's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The SHA-256 of `source`, lowercase hex.
    pub sha256: String,
    /// The Lua source.
    pub source: String,
    /// When it was published.
    pub created_at: DateTime<Utc>,
}

/// A stored plugin version as listed: everything but the source.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginVersion {
    /// The plugin's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The SHA-256 of its source, lowercase hex.
    pub sha256: String,
    /// The size of its source in bytes.
    pub size_bytes: u64,
    /// When it was published.
    pub created_at: DateTime<Utc>,
}

impl From<&PluginRecord> for PluginVersion {
    fn from(record: &PluginRecord) -> PluginVersion {
        PluginVersion {
            name: record.name.clone(),
            version: record.version.clone(),
            sha256: record.sha256.clone(),
            size_bytes: record.source.len() as u64,
            created_at: record.created_at,
        }
    }
}

/// A stored pipeline version.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineRecord {
    /// The version's id.
    pub id: Uuid,
    /// The pipeline's name.
    pub name: String,
    /// 1 for the first version of a name, then +1 per create.
    pub version: u32,
    /// The Lua source.
    pub source: String,
    /// The file name used in diagnostics.
    pub file_name: String,
    /// The validated definition.
    pub definition: PipelineDefinition,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// The plugins the definition names, pinned to their content at creation.
    pub plugins: Vec<PluginPin>,
}

/// A job to create, in state `queued`.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The job's id, chosen by the caller.
    pub id: Uuid,
    /// The pipeline version it runs.
    pub pipeline_id: Uuid,
    /// Typed inputs.
    pub inputs: ResolvedInputs,
    /// Makes a retried launch return the first job; unique when set.
    pub idempotency_key: Option<String>,
    /// How many attempts a lost runner may cost before the job is `lost`.
    pub max_attempts: u32,
    /// The trace context of the span that launched it, when tracing is on.
    pub trace: Option<TraceParent>,
    /// What started it.
    pub origin: JobOrigin,
}

/// Queued jobs that need the same runner tags.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueGroup {
    /// The tags they need.
    pub tags: BTreeMap<String, String>,
    /// How many are queued.
    pub depth: u64,
    /// When the oldest of them was launched.
    pub oldest: DateTime<Utc>,
}

/// A stored job, with what it needs to be dispatched.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// The job's id.
    pub id: Uuid,
    /// The pipeline version it runs.
    pub pipeline_id: Uuid,
    /// The pipeline's name.
    pub pipeline_name: String,
    /// The pipeline's version number.
    pub pipeline_version: u32,
    /// Labels a runner must carry (from the definition), as key → value.
    pub tags: BTreeMap<String, String>,
    /// Its state.
    pub state: JobState,
    /// Why it failed, when it did.
    pub failure_reason: Option<FailureReason>,
    /// A human-readable explanation of the outcome.
    pub message: String,
    /// Typed inputs.
    pub inputs: ResolvedInputs,
    /// From 1; raised by each requeue.
    pub attempt: u32,
    /// Raised by each assignment; 0 before the first.
    pub epoch: u64,
    /// The most attempts allowed.
    pub max_attempts: u32,
    /// The runner holding it, while assigned or running.
    pub runner_id: Option<Uuid>,
    /// The idempotency key it was launched with.
    pub idempotency_key: Option<String>,
    /// Outputs set by the pipeline.
    pub outputs: BTreeMap<String, String>,
    /// When it was launched.
    pub created_at: DateTime<Utc>,
    /// When a runner started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The trace context of the span that launched it: its trace is the job's.
    pub trace: Option<TraceParent>,
    /// What started it.
    pub origin: JobOrigin,
}

impl JobRecord {
    /// The job's current assignment.
    pub fn assignment(&self) -> Assignment {
        Assignment { job_id: self.id, attempt: self.attempt, epoch: self.epoch }
    }
}

/// A stored state change.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The state entered.
    pub state: JobState,
    /// When.
    pub at: DateTime<Utc>,
    /// Why, when there is more to say.
    pub message: String,
}

/// One stage of a job, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StageRecord {
    /// The stage's name.
    pub name: String,
    /// Its state.
    pub state: StageState,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it failed, when it did.
    pub failure_reason: Option<FailureReason>,
    /// A human-readable explanation.
    pub message: String,
}

/// Filters for listing jobs.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs of this pipeline name.
    pub pipeline_name: Option<String>,
    /// Only jobs in these states; empty for all.
    pub states: Vec<JobState>,
}

/// A position in the newest-first job listing: the last job of the previous page.
#[derive(Debug, Clone, PartialEq)]
pub struct JobCursor {
    /// Its creation time.
    pub created_at: DateTime<Utc>,
    /// Its id, to break ties.
    pub id: Uuid,
}

/// How a job finished, as a runner reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// A terminal state.
    pub state: JobState,
    /// Why it failed, when it did.
    pub failure_reason: Option<FailureReason>,
    /// A human-readable explanation.
    pub message: String,
    /// Outputs set by the pipeline.
    pub outputs: BTreeMap<String, String>,
}

/// A stage's state as a runner reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageReport<'a> {
    /// The stage's name.
    pub stage: &'a str,
    /// Its state.
    pub state: StageState,
    /// Why it failed, when it did.
    pub failure_reason: Option<FailureReason>,
    /// A human-readable explanation.
    pub message: &'a str,
    /// When.
    pub at: DateTime<Utc>,
}

impl<'a> StageReport<'a> {
    /// A report of `stage` entering `state` at `at`.
    pub fn new(
        stage: &'a str,
        state: StageState,
        failure_reason: Option<FailureReason>,
        message: &'a str,
        at: DateTime<Utc>,
    ) -> StageReport<'a> {
        StageReport { stage, state, failure_reason, message, at }
    }
}

/// The outcome of a cancel request.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// The job was queued and is now cancelled.
    Cancelled(JobRecord),
    /// The job is held by a runner, which must be told to stop; the job is marked and
    /// ends when the runner reports, or when its lease expires.
    Requested(JobRecord),
    /// The job had already ended.
    AlreadyEnded(JobRecord),
}

/// A runner as the registry remembers it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerRecord {
    /// Its stable id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// How many jobs it runs at once.
    pub capacity: u32,
    /// Its version.
    pub version: String,
    /// When it was last heard from.
    pub last_seen: DateTime<Utc>,
}

/// A registration token to store. Its secret is not stored, only its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRegistrationToken {
    /// Its id: the public part of the token.
    pub id: Uuid,
    /// The SHA-256 of its secret, in hex.
    pub secret_hash: String,
    /// The labels it grants; empty grants what each runner asks for.
    pub labels: BTreeMap<String, String>,
    /// How many runners may register with it; `None` for no limit.
    pub uses: Option<u32>,
    /// When it stops being accepted; `None` for never.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The outcome of presenting a stored registration token.
#[derive(Debug, Clone, PartialEq)]
pub enum Redemption {
    /// Accepted (one use was counted): the labels it grants.
    Granted(BTreeMap<String, String>),
    /// No token with this id and secret.
    Unknown,
    /// The token expired.
    Expired(DateTime<Utc>),
    /// Every use of the token was spent.
    UsedUp,
}

/// A registered runner's credential, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerCredential {
    /// The runner it belongs to.
    pub runner_id: Uuid,
    /// The SHA-256 of the credential's secret, in hex.
    pub secret_hash: String,
    /// The labels the runner may announce.
    pub labels: BTreeMap<String, String>,
    /// When it registered.
    pub registered_at: DateTime<Utc>,
    /// When the credential was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An API token as stored: its hash, never the token.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiTokenRecord {
    /// Its id, also part of the token.
    pub id: Uuid,
    /// What it is for.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The SHA-256 of the token.
    pub digest: TokenDigest,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last presented (updated at most once a minute); `None` when never.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it stops working; `None` when it does not expire.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked; `None` while it is not.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Everything the orchestrator stores. Secrets have their own part, [`SecretStore`].
#[async_trait]
pub trait Store: SecretStore + StatusStore + Send + Sync + 'static {
    /// Stores a new version of the pipeline `new.name`, numbered one above the latest
    /// (atomically: two concurrent creates get two different versions).
    async fn create_pipeline(&self, new: NewPipeline) -> StoreResult<PipelineRecord>;
    /// One pipeline version by id.
    async fn pipeline(&self, id: Uuid) -> StoreResult<Option<PipelineRecord>>;
    /// A pipeline version by name: `version` or, when `None`, the latest.
    async fn pipeline_by_name(&self, name: &str, version: Option<u32>) -> StoreResult<Option<PipelineRecord>>;
    /// The latest version of each pipeline, ordered by name, starting after `after_name`.
    async fn list_pipelines(&self, after_name: Option<&str>, limit: u64) -> StoreResult<Vec<PipelineRecord>>;
    /// Deletes every version of a pipeline; returns how many there were. Jobs stay.
    async fn delete_pipeline(&self, name: &str) -> StoreResult<u32>;

    /// Stores a version of a plugin; with the version already stored, returns the stored
    /// one and `false` (whatever its content: the caller compares).
    async fn publish_plugin(&self, new: NewPlugin) -> StoreResult<(PluginRecord, bool)>;
    /// A plugin by name and version, content hash, or (both `None`) its latest version.
    async fn plugin(
        &self,
        name: &str,
        version: Option<&str>,
        sha256: Option<&str>,
    ) -> StoreResult<Option<PluginRecord>>;
    /// Plugin versions (of `name`, or all), by name then publication, at most `limit`,
    /// without their sources.
    async fn list_plugins(&self, name: Option<&str>, limit: u64) -> StoreResult<Vec<PluginVersion>>;
    /// How many plugin versions are stored (of `name`, or of every plugin).
    async fn count_plugins(&self, name: Option<&str>) -> StoreResult<u64>;

    /// The queued jobs grouped by the runner tags they need, the largest groups first, at
    /// most `limit` groups (for the queue gauges).
    async fn queue_summary(&self, limit: u32) -> StoreResult<Vec<QueueGroup>>;

    /// Creates a queued job and records the `queued` transition. With an idempotency key
    /// already used, returns the existing job and `false`.
    async fn create_job(&self, new: NewJob) -> StoreResult<(JobRecord, bool)>;
    /// A job by id.
    async fn job(&self, id: Uuid) -> StoreResult<Option<JobRecord>>;
    /// Jobs newest first, after `cursor`.
    async fn list_jobs(
        &self,
        filter: &JobFilter,
        cursor: Option<&JobCursor>,
        limit: u64,
    ) -> StoreResult<Vec<JobRecord>>;
    /// A job's transitions, oldest first.
    async fn transitions(&self, job: Uuid) -> StoreResult<Vec<Transition>>;
    /// A job's stages as reported so far, in the order they started.
    async fn stages(&self, job: Uuid) -> StoreResult<Vec<StageRecord>>;

    /// Claims the oldest queued job whose tags the runner's labels satisfy (every tag
    /// key present with the same value): sets it `assigned` to the runner with
    /// epoch + 1, atomically across replicas (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the
    /// single writer on SQLite). Returns the job and the sequence its next log line gets
    /// (the highest stored + 1).
    async fn claim_job(
        &self,
        runner_id: Uuid,
        labels: &BTreeMap<String, String>,
    ) -> StoreResult<Option<(JobRecord, u64)>>;
    /// `assigned → running` under `assignment`, reported by `runner`; sets `started_at`.
    /// Like every change a runner reports, it does nothing unless `runner` is the job's
    /// assigned runner.
    async fn mark_running(&self, runner: Uuid, assignment: Assignment) -> StoreResult<Option<JobRecord>>;
    /// Ends a job under `assignment` with a terminal state, reported by `runner` (it must
    /// hold the job), or `None` when the orchestrator itself ends it (a job past its
    /// timeout); clears the runner.
    async fn finish_job(
        &self,
        runner: Option<Uuid>,
        assignment: Assignment,
        finish: Finish,
    ) -> StoreResult<Option<JobRecord>>;
    /// The runner of `assignment` is gone (lease expired, revoked, or it rejected the job):
    /// back to `queued` with attempt + 1 while attempts remain, otherwise `lost` with
    /// reason `runner_lost`. A job with a cancel requested ends `cancelled` instead.
    /// `runner` is the runner asking (it must hold the job), or `None` when the
    /// orchestrator itself decides.
    async fn requeue_job(
        &self,
        runner: Option<Uuid>,
        assignment: Assignment,
        message: &str,
    ) -> StoreResult<Option<JobRecord>>;
    /// Cancels a job: see [`CancelOutcome`].
    async fn cancel_job(&self, id: Uuid) -> StoreResult<Option<CancelOutcome>>;
    /// Whether a cancel was requested for the job.
    async fn cancel_requested(&self, id: Uuid) -> StoreResult<bool>;
    /// Jobs in `assigned` or `running` (of `runner`, or of every runner), oldest first.
    async fn active_jobs(&self, runner: Option<Uuid>) -> StoreResult<Vec<JobRecord>>;
    /// Records a stage's state under `assignment`, reported by `runner` (insert or update
    /// by job and name).
    async fn record_stage(&self, runner: Uuid, assignment: Assignment, report: StageReport<'_>) -> StoreResult<bool>;

    /// Stores log lines under `assignment`, reported by `runner`, in one statement. The job keeps the highest
    /// sequence stored, with every line below it stored too: lines at or below it are
    /// duplicates and dropped; a batch that would leave a gap above it is not stored (the
    /// runner resends from the ack); lines past `bounds::MAX_LOG_BATCH_BYTES` of text wait
    /// for the next batch. Returns `None` when the assignment is stale, else the job's
    /// highest stored sequence.
    async fn append_logs(&self, runner: Uuid, assignment: Assignment, lines: &[LogLine]) -> StoreResult<Option<u64>>;
    /// Stored lines of a job with sequence >= `from`, in order: at most `limit` lines and
    /// at most `max_bytes` of text and stage names, but at least one line when one is
    /// stored (a single line is capped on the way in). Never loads more than it returns.
    async fn read_logs(&self, job: Uuid, from: u64, limit: u64, max_bytes: u64) -> StoreResult<Vec<LogLine>>;
    /// The highest sequence stored for a job (0 when none).
    async fn last_log_sequence(&self, job: Uuid) -> StoreResult<u64>;

    /// Inserts or updates a runner.
    async fn upsert_runner(&self, runner: &RunnerRecord) -> StoreResult<()>;
    /// Every known runner.
    async fn runners(&self) -> StoreResult<Vec<RunnerRecord>>;

    /// Stores a registration token.
    async fn create_registration_token(&self, token: &NewRegistrationToken) -> StoreResult<()>;
    /// Presents the registration token `id` with the hash of its secret at time `at`:
    /// when it is valid, counts one use, atomically (two runners cannot both take the last
    /// use).
    async fn redeem_registration_token(
        &self,
        id: Uuid,
        secret_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Redemption>;
    /// Stores a new runner and its credential in one transaction.
    async fn register_runner(&self, runner: &RunnerRecord, credential: &RunnerCredential) -> StoreResult<()>;
    /// The credential of a registered runner.
    async fn runner_credential(&self, runner: Uuid) -> StoreResult<Option<RunnerCredential>>;
    /// Every registered runner's credential.
    async fn runner_credentials(&self) -> StoreResult<Vec<RunnerCredential>>;
    /// Revokes a runner's credential at `at`; `false` when the runner never registered.
    /// Revoking twice keeps the first time.
    async fn revoke_runner(&self, runner: Uuid, at: DateTime<Utc>) -> StoreResult<bool>;

    /// Stores a new API token.
    async fn create_api_token(&self, token: &ApiTokenRecord) -> StoreResult<()>;
    /// An API token by id, revoked or not.
    async fn api_token(&self, id: Uuid) -> StoreResult<Option<ApiTokenRecord>>;
    /// Every API token, revoked ones included, oldest first.
    async fn api_tokens(&self) -> StoreResult<Vec<ApiTokenRecord>>;
    /// Whether any API token was ever created (revoked ones count: revoking the last
    /// token must not open the API).
    async fn any_api_token(&self) -> StoreResult<bool>;
    /// Marks a token revoked at `at` unless it already is; returns it as stored after, or
    /// `None` when there is no such token.
    async fn revoke_api_token(&self, id: Uuid, at: DateTime<Utc>) -> StoreResult<Option<ApiTokenRecord>>;
    /// Records that a token was presented at `at`.
    async fn touch_api_token(&self, id: Uuid, at: DateTime<Utc>) -> StoreResult<()>;

    /// Stores a new schedule; `false` when `schedules::MAX_SCHEDULES` are stored already.
    async fn create_schedule(&self, schedule: &ScheduleRecord) -> StoreResult<bool>;
    /// A schedule by id.
    async fn schedule(&self, id: Uuid) -> StoreResult<Option<ScheduleRecord>>;
    /// Schedules in creation order, after the schedule `after`, at most `limit`.
    async fn list_schedules(&self, after: Option<Uuid>, limit: u64) -> StoreResult<Vec<ScheduleRecord>>;
    /// Deletes a schedule and its fires; `false` when there was none.
    async fn delete_schedule(&self, id: Uuid) -> StoreResult<bool>;
    /// Pauses or resumes a schedule at `at`; resuming moves its last due time up to `at`,
    /// so that nothing missed while paused fires. `None` when there is no such schedule.
    async fn set_schedule_paused(
        &self,
        id: Uuid,
        paused: bool,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<ScheduleRecord>>;
    /// Claims the fire of `due` for schedule `id`, in one transaction: inserts the
    /// `(id, due)` fire row unless it exists and advances the schedule's last due time to
    /// `latest_due` (only forward). `true` only for the one caller whose insert won; `false`
    /// too when the schedule is gone, paused, or already past `due`.
    async fn claim_fire(&self, id: Uuid, due: DateTime<Utc>, latest_due: DateTime<Utc>) -> StoreResult<bool>;
    /// Records the job that the fire of `due` launched.
    async fn record_fire_job(&self, id: Uuid, due: DateTime<Utc>, job: Uuid) -> StoreResult<()>;
    /// Advances schedule `id`'s last due time to `latest_due` (only forward): due times
    /// passed over without a run.
    async fn advance_schedule(&self, id: Uuid, latest_due: DateTime<Utc>) -> StoreResult<()>;
    /// Stores a new trigger with its sealed secret; `false` when
    /// `domain::triggers::MAX_TRIGGERS` are stored already.
    async fn create_trigger(&self, row: &crate::domain::triggers::TriggerRow) -> StoreResult<bool>;
    /// A trigger by id, with its sealed secret (for the webhook listener).
    async fn trigger(&self, id: Uuid) -> StoreResult<Option<crate::domain::triggers::TriggerRow>>;
    /// Every trigger, oldest first, without secrets.
    async fn list_triggers(&self) -> StoreResult<Vec<crate::domain::triggers::TriggerRecord>>;
    /// Deletes a trigger; `false` when there was none.
    async fn delete_trigger(&self, id: Uuid) -> StoreResult<bool>;
    /// Every trigger with its sealed secret, for re-encryption.
    async fn trigger_rows(&self) -> StoreResult<Vec<crate::domain::triggers::TriggerRow>>;
    /// Replaces the sealed secret of trigger `id` if it still holds `old`; `false` when the
    /// trigger changed (deleted) since it was read.
    async fn reseal_trigger(
        &self,
        id: Uuid,
        old: &crate::domain::keyring::Sealed,
        new: &crate::domain::keyring::Sealed,
    ) -> StoreResult<bool>;
}
