//! [`SeaStore`]: the [`Store`] implementation, and how it serialises writers.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rivet_core::{Assignment, LogLine};
use sea_orm::{DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, TransactionOptions, TransactionTrait};
use tokio::sync::{Mutex, OwnedMutexGuard};
use uuid::Uuid;

use super::codec::db_err;
use super::{claim, identity, jobs, lifecycle, logs, pipelines, plugins, runners, schedules, tokens};
use crate::domain::schedules::ScheduleRecord;
use crate::domain::store::{
    ApiTokenRecord, CancelOutcome, Finish, JobCursor, JobFilter, JobRecord, NewJob, NewPipeline, NewPlugin,
    NewRegistrationToken, PipelineRecord, PluginRecord, PluginVersion, QueueGroup, Redemption, RunnerCredential,
    RunnerRecord, StageRecord, StageReport, Store, StoreResult, Transition,
};

/// The database behind a [`SeaStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// PostgreSQL: distributed mode, many replicas.
    Postgres,
    /// SQLite: embedded mode, one process.
    Sqlite,
}

impl Backend {
    /// The backend's name: `postgres` or `sqlite`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }

    /// The most bind parameters one statement may carry.
    pub(crate) fn max_parameters(self) -> usize {
        match self {
            // The protocol counts parameters in an unsigned 16-bit field.
            Backend::Postgres => 65_535,
            // SQLITE_MAX_VARIABLE_NUMBER's default since 3.32.
            Backend::Sqlite => 32_766,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The [`Store`] on sea-orm, for PostgreSQL and SQLite alike. Cheap to clone: clones share
/// the connection pool and the writer lock.
///
/// Every write runs in one transaction. On PostgreSQL, rows are locked explicitly
/// (`FOR UPDATE`, and `FOR UPDATE SKIP LOCKED` for the job being claimed), so replicas can
/// write at the same time. SQLite silently drops those clauses; there, every write transaction
/// first takes this store's writer lock and then opens with `BEGIN IMMEDIATE`, which takes
/// SQLite's write lock before the first read. Reads inside a write transaction therefore
/// see no concurrent writer, which makes the claim atomic; the in-process lock only saves
/// writers from polling SQLite's busy timeout, while `BEGIN IMMEDIATE` still holds when
/// another process opens the same file.
#[derive(Clone)]
pub struct SeaStore {
    pub(crate) db: DatabaseConnection,
    pub(crate) backend: Backend,
    writer: Arc<Mutex<()>>,
}

impl fmt::Debug for SeaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeaStore").field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl SeaStore {
    pub(crate) fn new(db: DatabaseConnection, backend: Backend) -> SeaStore {
        SeaStore { db, backend, writer: Arc::new(Mutex::new(())) }
    }

    /// The database this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying connection, for tests that need to reach past the contract (e.g. to
    /// plant a corrupt row); only with the `testing` feature.
    #[cfg(feature = "testing")]
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Opens a write transaction: see the type's documentation.
    pub(crate) async fn write(&self) -> StoreResult<WriteTxn> {
        let guard = match self.backend {
            Backend::Sqlite => Some(Arc::clone(&self.writer).lock_owned().await),
            Backend::Postgres => None,
        };
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        let txn = self.db.begin_with_options(options).await.map_err(db_err)?;
        Ok(WriteTxn { txn, _guard: guard })
    }
}

/// A write transaction, holding the writer lock on SQLite until it ends. Dropping it
/// without [`WriteTxn::commit`] rolls back.
pub(crate) struct WriteTxn {
    // Declared first so that it is dropped (rolled back) before the lock is released.
    txn: DatabaseTransaction,
    _guard: Option<OwnedMutexGuard<()>>,
}

impl WriteTxn {
    /// Commits, then releases the writer lock.
    pub(crate) async fn commit(self) -> StoreResult<()> {
        let WriteTxn { txn, _guard } = self;
        txn.commit().await.map_err(db_err)
    }
}

impl Deref for WriteTxn {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

#[async_trait]
impl Store for SeaStore {
    #[tracing::instrument(name = "store.create_pipeline", skip_all, fields(otel.kind = "client"))]
    async fn create_pipeline(&self, new: NewPipeline) -> StoreResult<PipelineRecord> {
        pipelines::create(self, new).await
    }

    #[tracing::instrument(name = "store.pipeline", skip_all, fields(otel.kind = "client"))]
    async fn pipeline(&self, id: Uuid) -> StoreResult<Option<PipelineRecord>> {
        pipelines::by_id(self, id).await
    }

    #[tracing::instrument(name = "store.pipeline_by_name", skip_all, fields(otel.kind = "client"))]
    async fn pipeline_by_name(&self, name: &str, version: Option<u32>) -> StoreResult<Option<PipelineRecord>> {
        pipelines::by_name(self, name, version).await
    }

    #[tracing::instrument(name = "store.list_pipelines", skip_all, fields(otel.kind = "client"))]
    async fn list_pipelines(&self, after_name: Option<&str>, limit: u64) -> StoreResult<Vec<PipelineRecord>> {
        pipelines::list(self, after_name, limit).await
    }

    #[tracing::instrument(name = "store.delete_pipeline", skip_all, fields(otel.kind = "client"))]
    async fn delete_pipeline(&self, name: &str) -> StoreResult<u32> {
        pipelines::delete(self, name).await
    }

    #[tracing::instrument(name = "store.publish_plugin", skip_all, fields(otel.kind = "client"))]
    async fn publish_plugin(&self, new: NewPlugin) -> StoreResult<(PluginRecord, bool)> {
        plugins::publish(self, new).await
    }

    #[tracing::instrument(name = "store.plugin", skip_all, fields(otel.kind = "client"))]
    async fn plugin(
        &self,
        name: &str,
        version: Option<&str>,
        sha256: Option<&str>,
    ) -> StoreResult<Option<PluginRecord>> {
        plugins::find(self, name, version, sha256).await
    }

    #[tracing::instrument(name = "store.list_plugins", skip_all, fields(otel.kind = "client"))]
    async fn list_plugins(&self, name: Option<&str>, limit: u64) -> StoreResult<Vec<PluginVersion>> {
        plugins::list(self, name, limit).await
    }

    #[tracing::instrument(name = "store.count_plugins", skip_all, fields(otel.kind = "client"))]
    async fn count_plugins(&self, name: Option<&str>) -> StoreResult<u64> {
        plugins::count(self, name).await
    }

    #[tracing::instrument(name = "store.create_job", skip_all, fields(otel.kind = "client"))]
    async fn create_job(&self, new: NewJob) -> StoreResult<(JobRecord, bool)> {
        jobs::create(self, new).await
    }

    #[tracing::instrument(name = "store.job", skip_all, fields(otel.kind = "client"))]
    async fn job(&self, id: Uuid) -> StoreResult<Option<JobRecord>> {
        jobs::by_id(self, id).await
    }

    #[tracing::instrument(name = "store.list_jobs", skip_all, fields(otel.kind = "client"))]
    async fn list_jobs(
        &self,
        filter: &JobFilter,
        cursor: Option<&JobCursor>,
        limit: u64,
    ) -> StoreResult<Vec<JobRecord>> {
        jobs::list(self, filter, cursor, limit).await
    }

    #[tracing::instrument(name = "store.transitions", skip_all, fields(otel.kind = "client"))]
    async fn transitions(&self, job: Uuid) -> StoreResult<Vec<Transition>> {
        jobs::transitions(self, job).await
    }

    #[tracing::instrument(name = "store.queue_summary", skip_all, fields(otel.kind = "client"))]
    async fn queue_summary(&self, limit: u32) -> StoreResult<Vec<QueueGroup>> {
        jobs::queue_summary(self, limit).await
    }

    #[tracing::instrument(name = "store.stages", skip_all, fields(otel.kind = "client"))]
    async fn stages(&self, job: Uuid) -> StoreResult<Vec<StageRecord>> {
        jobs::stages(self, job).await
    }

    #[tracing::instrument(name = "store.claim_job", skip_all, fields(otel.kind = "client"))]
    async fn claim_job(
        &self,
        runner_id: Uuid,
        labels: &BTreeMap<String, String>,
    ) -> StoreResult<Option<(JobRecord, u64)>> {
        claim::claim(self, runner_id, labels).await
    }

    #[tracing::instrument(name = "store.mark_running", skip_all, fields(otel.kind = "client"))]
    async fn mark_running(&self, runner: Uuid, assignment: Assignment) -> StoreResult<Option<JobRecord>> {
        lifecycle::mark_running(self, runner, assignment).await
    }

    #[tracing::instrument(name = "store.finish_job", skip_all, fields(otel.kind = "client"))]
    async fn finish_job(
        &self,
        runner: Option<Uuid>,
        assignment: Assignment,
        finish: Finish,
    ) -> StoreResult<Option<JobRecord>> {
        lifecycle::finish(self, runner, assignment, finish).await
    }

    #[tracing::instrument(name = "store.requeue_job", skip_all, fields(otel.kind = "client"))]
    async fn requeue_job(
        &self,
        runner: Option<Uuid>,
        assignment: Assignment,
        message: &str,
    ) -> StoreResult<Option<JobRecord>> {
        lifecycle::requeue(self, runner, assignment, message).await
    }

    #[tracing::instrument(name = "store.cancel_job", skip_all, fields(otel.kind = "client"))]
    async fn cancel_job(&self, id: Uuid) -> StoreResult<Option<CancelOutcome>> {
        jobs::cancel(self, id).await
    }

    #[tracing::instrument(name = "store.cancel_requested", skip_all, fields(otel.kind = "client"))]
    async fn cancel_requested(&self, id: Uuid) -> StoreResult<bool> {
        jobs::cancel_requested(self, id).await
    }

    #[tracing::instrument(name = "store.active_jobs", skip_all, fields(otel.kind = "client"))]
    async fn active_jobs(&self, runner: Option<Uuid>) -> StoreResult<Vec<JobRecord>> {
        jobs::active(self, runner).await
    }

    #[tracing::instrument(name = "store.record_stage", skip_all, fields(otel.kind = "client"))]
    async fn record_stage(&self, runner: Uuid, assignment: Assignment, report: StageReport<'_>) -> StoreResult<bool> {
        lifecycle::record_stage(self, runner, assignment, report).await
    }

    #[tracing::instrument(name = "store.append_logs", skip_all, fields(otel.kind = "client"))]
    async fn append_logs(&self, runner: Uuid, assignment: Assignment, lines: &[LogLine]) -> StoreResult<Option<u64>> {
        logs::append(self, runner, assignment, lines).await
    }

    #[tracing::instrument(name = "store.read_logs", skip_all, fields(otel.kind = "client"))]
    async fn read_logs(&self, job: Uuid, from: u64, limit: u64, max_bytes: u64) -> StoreResult<Vec<LogLine>> {
        logs::read(self, job, from, limit, max_bytes).await
    }

    #[tracing::instrument(name = "store.last_log_sequence", skip_all, fields(otel.kind = "client"))]
    async fn last_log_sequence(&self, job: Uuid) -> StoreResult<u64> {
        logs::last_sequence(self, job).await
    }

    #[tracing::instrument(name = "store.upsert_runner", skip_all, fields(otel.kind = "client"))]
    async fn upsert_runner(&self, runner: &RunnerRecord) -> StoreResult<()> {
        runners::upsert(self, runner).await
    }

    #[tracing::instrument(name = "store.runners", skip_all, fields(otel.kind = "client"))]
    async fn runners(&self) -> StoreResult<Vec<RunnerRecord>> {
        runners::all(self).await
    }

    #[tracing::instrument(name = "store.create_registration_token", skip_all, fields(otel.kind = "client"))]
    async fn create_registration_token(&self, token: &NewRegistrationToken) -> StoreResult<()> {
        identity::create_token(self, token).await
    }

    #[tracing::instrument(name = "store.redeem_registration_token", skip_all, fields(otel.kind = "client"))]
    async fn redeem_registration_token(
        &self,
        id: Uuid,
        secret_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Redemption> {
        identity::redeem_token(self, id, secret_hash, at).await
    }

    #[tracing::instrument(name = "store.register_runner", skip_all, fields(otel.kind = "client"))]
    async fn register_runner(&self, runner: &RunnerRecord, credential: &RunnerCredential) -> StoreResult<()> {
        identity::register(self, runner, credential).await
    }

    #[tracing::instrument(name = "store.runner_credential", skip_all, fields(otel.kind = "client"))]
    async fn runner_credential(&self, runner: Uuid) -> StoreResult<Option<RunnerCredential>> {
        identity::credential(self, runner).await
    }

    #[tracing::instrument(name = "store.runner_credentials", skip_all, fields(otel.kind = "client"))]
    async fn runner_credentials(&self) -> StoreResult<Vec<RunnerCredential>> {
        identity::credentials(self).await
    }

    #[tracing::instrument(name = "store.revoke_runner", skip_all, fields(otel.kind = "client"))]
    async fn revoke_runner(&self, runner: Uuid, at: DateTime<Utc>) -> StoreResult<bool> {
        identity::revoke(self, runner, at).await
    }

    #[tracing::instrument(name = "store.create_api_token", skip_all, fields(otel.kind = "client"))]
    async fn create_api_token(&self, token: &ApiTokenRecord) -> StoreResult<()> {
        tokens::create(self, token).await
    }

    #[tracing::instrument(name = "store.api_token", skip_all, fields(otel.kind = "client"))]
    async fn api_token(&self, id: Uuid) -> StoreResult<Option<ApiTokenRecord>> {
        tokens::by_id(self, id).await
    }

    #[tracing::instrument(name = "store.api_tokens", skip_all, fields(otel.kind = "client"))]
    async fn api_tokens(&self) -> StoreResult<Vec<ApiTokenRecord>> {
        tokens::all(self).await
    }

    #[tracing::instrument(name = "store.any_api_token", skip_all, fields(otel.kind = "client"))]
    async fn any_api_token(&self) -> StoreResult<bool> {
        tokens::any(self).await
    }

    #[tracing::instrument(name = "store.revoke_api_token", skip_all, fields(otel.kind = "client"))]
    async fn revoke_api_token(&self, id: Uuid, at: DateTime<Utc>) -> StoreResult<Option<ApiTokenRecord>> {
        tokens::revoke(self, id, at).await
    }

    #[tracing::instrument(name = "store.touch_api_token", skip_all, fields(otel.kind = "client"))]
    async fn touch_api_token(&self, id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
        tokens::touch(self, id, at).await
    }

    async fn create_schedule(&self, schedule: &ScheduleRecord) -> StoreResult<bool> {
        schedules::create(self, schedule).await
    }

    async fn schedule(&self, id: Uuid) -> StoreResult<Option<ScheduleRecord>> {
        schedules::by_id(self, id).await
    }

    async fn list_schedules(&self, after: Option<Uuid>, limit: u64) -> StoreResult<Vec<ScheduleRecord>> {
        schedules::list(self, after, limit).await
    }

    async fn delete_schedule(&self, id: Uuid) -> StoreResult<bool> {
        schedules::delete(self, id).await
    }

    async fn set_schedule_paused(
        &self,
        id: Uuid,
        paused: bool,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<ScheduleRecord>> {
        schedules::set_paused(self, id, paused, at).await
    }

    async fn claim_fire(&self, id: Uuid, due: DateTime<Utc>, latest_due: DateTime<Utc>) -> StoreResult<bool> {
        schedules::claim_fire(self, id, due, latest_due).await
    }

    async fn record_fire_job(&self, id: Uuid, due: DateTime<Utc>, job: Uuid) -> StoreResult<()> {
        schedules::record_fire_job(self, id, due, job).await
    }

    async fn advance_schedule(&self, id: Uuid, latest_due: DateTime<Utc>) -> StoreResult<()> {
        schedules::advance(self, id, latest_due).await
    }

    async fn create_trigger(&self, row: &crate::domain::triggers::TriggerRow) -> StoreResult<bool> {
        super::triggers::create(self, row).await
    }

    async fn trigger(&self, id: Uuid) -> StoreResult<Option<crate::domain::triggers::TriggerRow>> {
        super::triggers::by_id(self, id).await
    }

    async fn list_triggers(&self) -> StoreResult<Vec<crate::domain::triggers::TriggerRecord>> {
        super::triggers::all(self).await
    }

    async fn delete_trigger(&self, id: Uuid) -> StoreResult<bool> {
        super::triggers::delete(self, id).await
    }

    async fn trigger_rows(&self) -> StoreResult<Vec<crate::domain::triggers::TriggerRow>> {
        super::triggers::rows(self).await
    }

    async fn reseal_trigger(
        &self,
        id: Uuid,
        old: &crate::domain::keyring::Sealed,
        new: &crate::domain::keyring::Sealed,
    ) -> StoreResult<bool> {
        super::triggers::reseal(self, id, old, new).await
    }
}
