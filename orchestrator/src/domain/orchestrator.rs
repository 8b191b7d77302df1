//! The orchestrator's core: pipelines, launches, cancels, and the signals (fan-out
//! messages, dispatch wake-ups) that keep replicas in step.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use rivet_core::{Assignment, FailureReason, JobOrigin, LogLine, PipelineDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::config::Config;
use crate::domain::bounds;
use crate::domain::coord::{Coordinator, Topic};
use crate::domain::error::{Error, Result};
use crate::domain::keyring::Keyring;
use crate::domain::metrics::{Metrics, Requeue};
use crate::domain::registry::Registry;
use crate::domain::store::{CancelOutcome, Finish, JobRecord, NewJob, NewPipeline, PipelineRecord, Store};

/// A job to launch: a pipeline (name or version id), raw inputs typed by its
/// declarations, and what started it.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// A pipeline name (its latest version) or a pipeline version id.
    pub pipeline: String,
    /// Raw input values by name.
    pub inputs: BTreeMap<String, String>,
    /// Makes a retried launch return the first job.
    pub idempotency_key: Option<String>,
    /// What started it.
    pub origin: JobOrigin,
}

/// A command for the replica that holds a runner's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RunnerCommand {
    /// Stop the job running under this assignment.
    Cancel {
        /// The assignment to stop.
        assignment: Assignment,
        /// Why.
        reason: FailureReason,
    },
    /// The runner connected again: end every session of it except `keep`.
    Fence {
        /// The new connection.
        keep: Uuid,
    },
    /// The runner's credential was revoked: end its sessions at once.
    Revoke,
}

/// The orchestrator's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    coord: Arc<dyn Coordinator>,
    config: Config,
    registry: Registry,
    replica: String,
    dispatch: Notify,
    shutdown: CancellationToken,
    /// Evaluates pipeline scripts in worker processes that are killed when they overrun.
    evaluator: rivet_evaluator::Pool,
    /// The keys that seal and open stored secrets.
    keyring: Keyring,
    /// Pipeline versions never change: dispatch reads each from the store once.
    pipelines: std::sync::Mutex<std::collections::HashMap<Uuid, Arc<PipelineRecord>>>,
    /// Plugin sources by hash, for dispatch (see `domain::plugins`).
    plugin_sources: crate::domain::plugins::SourceCache,
    metrics: Metrics,
}

/// How many pipeline versions the dispatch cache holds before it starts over.
const PIPELINE_CACHE: usize = 256;

/// The most bytes of log text per fan-out message; see [`Orchestrator::logs_stored`].
/// Well under a follower's live buffer (`coord::FOLLOWER_BUFFER_BYTES`), even with JSON's
/// escapes.
pub const FANOUT_MESSAGE_BYTES: usize = 1024 * 1024;

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator").field("replica", &self.inner.replica).finish_non_exhaustive()
    }
}

impl Orchestrator {
    /// Assembles an orchestrator from its parts.
    pub fn new(store: Arc<dyn Store>, coord: Arc<dyn Coordinator>, config: Config, keyring: Keyring) -> Orchestrator {
        let replica = config.replica_id.clone().unwrap_or_else(|| format!("replica-{}", Uuid::new_v4().simple()));
        let evaluator = rivet_evaluator::Pool::new(config.evaluation.pool_config());
        Orchestrator {
            inner: Arc::new(Inner {
                store,
                coord,
                config,
                registry: Registry::default(),
                replica,
                dispatch: Notify::new(),
                shutdown: CancellationToken::new(),
                evaluator,
                keyring,
                pipelines: Default::default(),
                plugin_sources: Default::default(),
                // The RPC latency is labelled by the methods the role table lists: every
                // method served, and nothing a caller makes up.
                metrics: Metrics::new(crate::api::roles::ROLE_TABLE.iter().map(|(method, _)| *method)),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// The coordinator.
    pub fn coord(&self) -> &dyn Coordinator {
        self.inner.coord.as_ref()
    }

    /// The keys of stored secrets.
    pub fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The plugin sources dispatch has read.
    pub(crate) fn plugin_sources(&self) -> &crate::domain::plugins::SourceCache {
        &self.inner.plugin_sources
    }

    /// The metrics this replica serves.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The runners connected to this replica.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The evaluation pool, to see how busy it is.
    pub fn evaluator(&self) -> &rivet_evaluator::Pool {
        &self.inner.evaluator
    }

    /// This replica's name.
    pub fn replica(&self) -> &str {
        &self.inner.replica
    }

    /// Cancelled when the orchestrator shuts down.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Wakes this replica's dispatcher.
    pub fn wake_dispatcher(&self) {
        self.inner.dispatch.notify_one();
    }

    pub(crate) async fn dispatcher_woken(&self) {
        self.inner.dispatch.notified().await;
    }

    /// Validates a pipeline script in a worker process of the evaluation pool: Lua
    /// evaluation is CPU work, and a hostile script may get stuck where only a kill ends it.
    pub async fn validate(&self, source: String, file_name: String) -> Result<PipelineDefinition> {
        if source.len() > self.inner.config.max_pipeline_bytes {
            return Err(Error::invalid(
                "source",
                format!(
                    "is {} bytes; pipeline scripts may be at most {}",
                    source.len(),
                    self.inner.config.max_pipeline_bytes
                ),
            ));
        }
        let file_name = if file_name.is_empty() { "pipeline.lua".to_owned() } else { file_name };
        // A script a limit stopped is an invalid script, reported like the others.
        let checked = self.inner.evaluator.evaluate(source, file_name).await?;
        checked.map_err(|err| match err {
            rivet_core::LoadError::Invalid(diagnostics) => Error::InvalidPipeline(diagnostics),
            other => Error::Internal(other.to_string()),
        })
    }

    /// Validates and stores a pipeline version.
    pub async fn create_pipeline(&self, source: String, file_name: String) -> Result<PipelineRecord> {
        let file_name = if file_name.is_empty() { "pipeline.lua".to_owned() } else { file_name };
        let definition = self.validate(source.clone(), file_name.clone()).await?;
        crate::domain::secrets::check_declared(self.store(), &definition, &source, &file_name).await?;
        let plugins = self.pin_plugins(&definition).await?;
        let new = NewPipeline { name: definition.name.clone(), source, file_name, definition, plugins };
        Ok(self.inner.store.create_pipeline(new).await?)
    }

    /// Finds a pipeline by version id or by name (`version` 0 for the latest).
    pub async fn find_pipeline(&self, reference: &str, version: u32) -> Result<PipelineRecord> {
        if reference.is_empty() {
            return Err(Error::invalid("pipeline", "is required: a pipeline name or version id"));
        }
        let found = match Uuid::parse_str(reference) {
            Ok(id) => self.inner.store.pipeline(id).await?,
            Err(_) => self.inner.store.pipeline_by_name(reference, (version > 0).then_some(version)).await?,
        };
        found.ok_or_else(|| Error::NotFound { what: "pipeline", id: reference.to_owned() })
    }

    /// Launches a job: resolves the pipeline and types the inputs, then queues the job. The
    /// `launch` span (a child of the caller's trace, when it sent one) starts the job's
    /// trace: its context is stored with the job, and every later span of the job, on any
    /// replica and on the runner, descends from it.
    pub async fn launch(&self, launch: Launch) -> Result<JobRecord> {
        self.launch_created(launch).await.map(|(job, _)| job)
    }

    /// [`Orchestrator::launch`], also telling whether the job is new: `false` when the
    /// idempotency key was used already and the job returned is the first launch's (a
    /// webhook redelivered, say).
    #[tracing::instrument(
        name = "launch",
        skip_all,
        fields(
            // Recorded once resolved: the request's reference is the caller's to choose.
            pipeline = tracing::field::Empty,
            origin = launch.origin.kind(),
            job = tracing::field::Empty,
            pipeline_version = tracing::field::Empty,
        )
    )]
    pub async fn launch_created(&self, launch: Launch) -> Result<(JobRecord, bool)> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let pipeline = self.find_pipeline(&launch.pipeline, 0).await?;
        tracing::Span::current().record("pipeline", pipeline.name.as_str());
        let inputs = rivet_core::resolve(&pipeline.definition.inputs, &launch.inputs).map_err(Error::InvalidInputs)?;
        self.queue(&pipeline, inputs, launch.idempotency_key, launch.origin).await
    }

    /// Launches `job`'s pipeline version again with its inputs, recording the link.
    pub async fn rerun(&self, job: Uuid) -> Result<JobRecord> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let original = self.job(job).await?;
        let pipeline = self
            .inner
            .store
            .pipeline(original.pipeline_id)
            .await?
            .ok_or_else(|| Error::NotFound { what: "pipeline version", id: original.pipeline_id.to_string() })?;
        let span = tracing::info_span!("launch", pipeline = %pipeline.name, origin = "rerun", rerun_of = %job);
        let (job, _) =
            self.queue(&pipeline, original.inputs, None, JobOrigin::Rerun { of: job }).instrument(span).await?;
        Ok(job)
    }

    /// Queues a job of `pipeline` with typed `inputs`; its trace is the current span's.
    async fn queue(
        &self,
        pipeline: &PipelineRecord,
        inputs: rivet_core::ResolvedInputs,
        idempotency_key: Option<String>,
        origin: JobOrigin,
    ) -> Result<(JobRecord, bool)> {
        let span = tracing::Span::current();
        let new = NewJob {
            id: Uuid::now_v7(),
            pipeline_id: pipeline.id,
            inputs,
            idempotency_key,
            max_attempts: self.inner.config.max_attempts,
            trace: rivet_telemetry::trace::traceparent(&span),
            origin,
        };
        span.record("job", tracing::field::display(new.id));
        span.record("pipeline_version", pipeline.version);
        let (job, created) = self.inner.store.create_job(new).await?;
        if created {
            self.inner.metrics.launched();
            self.job_changed(job.id).await;
            self.announce_dispatch().await;
        }
        Ok((job, created))
    }

    /// A pipeline version by id, from a cache: versions are immutable.
    pub async fn pipeline_version(&self, id: Uuid) -> Result<Option<Arc<PipelineRecord>>> {
        let cached = self.inner.pipelines.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned();
        if let Some(pipeline) = cached {
            return Ok(Some(pipeline));
        }
        let Some(pipeline) = self.inner.store.pipeline(id).await? else { return Ok(None) };
        let pipeline = Arc::new(pipeline);
        let mut cache = self.inner.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= PIPELINE_CACHE {
            cache.clear();
        }
        cache.insert(id, pipeline.clone());
        Ok(Some(pipeline))
    }

    /// A job by id.
    pub async fn job(&self, id: Uuid) -> Result<JobRecord> {
        self.inner.store.job(id).await?.ok_or_else(|| Error::NotFound { what: "job", id: id.to_string() })
    }

    /// Cancels a job. A queued job ends at once; a running one is stopped by its runner,
    /// wherever it is connected.
    pub async fn cancel(&self, id: Uuid) -> Result<JobRecord> {
        let outcome = self.inner.store.cancel_job(id).await?;
        match outcome {
            None => Err(Error::NotFound { what: "job", id: id.to_string() }),
            Some(CancelOutcome::AlreadyEnded(job)) => Err(Error::AlreadyEnded(job.id, job.state)),
            Some(CancelOutcome::Cancelled(job)) => {
                self.job_ended(&job).await;
                self.job_changed(job.id).await;
                Ok(job)
            }
            Some(CancelOutcome::Requested(job)) => {
                if let Some(runner) = job.runner_id {
                    let command =
                        RunnerCommand::Cancel { assignment: job.assignment(), reason: FailureReason::Cancelled };
                    self.send_runner_command(runner, &command).await;
                }
                self.job_changed(job.id).await;
                Ok(job)
            }
        }
    }

    /// Ends an assigned or running job (see [`Store::finish_job`]), and records its end.
    pub async fn finish_job(
        &self,
        runner: Option<Uuid>,
        assignment: Assignment,
        finish: Finish,
    ) -> Result<Option<JobRecord>> {
        let finished = self.inner.store.finish_job(runner, assignment, finish).await?;
        if let Some(job) = &finished {
            self.job_ended(job).await;
        }
        Ok(finished)
    }

    /// Takes a job from its runner (see [`Store::requeue_job`]): queued again, or ended
    /// when it has no attempt left; either is recorded.
    pub async fn requeue_job(
        &self,
        runner: Option<Uuid>,
        assignment: Assignment,
        reason: Requeue,
        message: &str,
    ) -> Result<Option<JobRecord>> {
        let requeued = self.inner.store.requeue_job(runner, assignment, message).await?;
        if let Some(job) = &requeued {
            self.inner.metrics.requeued(reason);
            if job.state.is_terminal() {
                self.job_ended(job).await;
            }
        }
        Ok(requeued)
    }

    /// Reports `job`'s state to a forge from now on: pending now, its final state when it
    /// ends (see `domain::statuses`).
    pub async fn track_status(&self, job: &JobRecord, target: crate::domain::statuses::StatusTarget) -> Result<()> {
        crate::domain::statuses::track(self, job, target).await
    }

    /// Records that a job reached its final state: the metrics, its commit status when it
    /// is tracked, and the `finish` span of its trace.
    async fn job_ended(&self, job: &JobRecord) {
        self.inner.metrics.ended(job);
        crate::domain::statuses::job_ended(self, job).await;
        let span = tracing::info_span!(
            "finish",
            job = %job.id,
            state = job.state.as_str(),
            failure_reason = job.failure_reason.map(|reason| reason.as_str()),
            attempt = job.attempt,
            replica = %self.inner.replica,
        );
        rivet_telemetry::trace::set_parent(&span, job.trace.as_ref());
        // The span is the record: it ends here, with nothing inside.
        drop(span);
    }

    /// Delivers a command to whichever replica holds the runner's stream.
    pub async fn send_runner_command(&self, runner: Uuid, command: &RunnerCommand) {
        match serde_json::to_vec(command) {
            Ok(payload) => {
                if let Err(err) = self.inner.coord.publish(&Topic::Runner(runner), Bytes::from(payload)).await {
                    tracing::warn!(%runner, error = %err, "failed to publish a runner command");
                }
            }
            Err(err) => tracing::error!(error = %err, "failed to encode a runner command"),
        }
    }

    /// Tells followers of a job (on every replica) that it changed.
    pub async fn job_changed(&self, job: Uuid) {
        if let Err(err) = self.inner.coord.publish(&Topic::JobEvents(job), Bytes::new()).await {
            tracing::warn!(%job, error = %err, "failed to publish a job event");
        }
    }

    /// Tells followers of a job (on every replica) about newly stored log lines, in
    /// messages of at most [`FANOUT_MESSAGE_BYTES`] of text (but at least one line each), so
    /// that every message fits in a follower's live buffer.
    pub async fn logs_stored(&self, job: Uuid, lines: &[LogLine]) {
        let mut rest = lines;
        while !rest.is_empty() {
            let mut bytes = 0;
            let count = rest
                .iter()
                .take_while(|line| {
                    bytes += bounds::log_line_bytes(line);
                    bytes <= FANOUT_MESSAGE_BYTES
                })
                .count()
                .max(1);
            let (message, after) = rest.split_at(count);
            rest = after;
            let payload = match serde_json::to_vec(message) {
                Ok(payload) => payload,
                Err(err) => return tracing::error!(error = %err, "failed to encode log lines"),
            };
            if let Err(err) = self.inner.coord.publish(&Topic::JobLogs(job), Bytes::from(payload)).await {
                return tracing::warn!(%job, error = %err, "failed to publish log lines");
            }
        }
    }

    /// Wakes the dispatchers of every replica.
    pub async fn announce_dispatch(&self) {
        self.wake_dispatcher();
        if let Err(err) = self.inner.coord.publish(&Topic::Dispatch, Bytes::new()).await {
            tracing::warn!(error = %err, "failed to announce a dispatch");
        }
    }
}
