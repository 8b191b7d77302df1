//! Push dispatch: queued jobs go to connected runners with free capacity whose labels
//! satisfy the job's tags. Every replica runs a dispatcher for its own runners; claiming
//! is atomic in the store, so replicas never hand out the same job twice.

use std::time::Duration;

use futures_util::StreamExt;
use rivet_core::protocol::{AssignJob, ToRunner};
use rivet_telemetry::KeyValue;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::domain::coord::Topic;
use crate::domain::error::Result;
use crate::domain::metrics::Requeue;
use crate::domain::orchestrator::Orchestrator;
use crate::domain::registry::ConnectedRunner;
use crate::domain::secrets;
use crate::domain::store::{JobRecord, PipelineRecord};

/// How often the dispatcher looks for work without being woken, as a safety net for a
/// missed wake-up (fan-out is at most once).
const DISPATCH_TICK: Duration = Duration::from_secs(1);

/// Runs this replica's dispatcher until `shutdown`.
pub async fn run(orchestrator: Orchestrator, shutdown: CancellationToken) {
    let mut wakeups = match orchestrator.coord().subscribe(&Topic::Dispatch).await {
        Ok(stream) => Some(stream),
        Err(err) => {
            tracing::warn!(error = %err, "dispatcher runs without cross-replica wake-ups");
            None
        }
    };
    let mut tick = tokio::time::interval(DISPATCH_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = orchestrator.dispatcher_woken() => {}
            Some(_) = next_wakeup(&mut wakeups) => {}
            _ = tick.tick() => {}
        }
        if let Err(err) = dispatch_once(&orchestrator).await {
            tracing::warn!(error = %err, "dispatch failed; retrying on the next tick");
        }
    }
}

async fn next_wakeup(wakeups: &mut Option<futures_util::stream::BoxStream<'static, bytes::Bytes>>) -> Option<()> {
    match wakeups {
        Some(stream) => stream.next().await.map(|_| ()),
        None => std::future::pending().await,
    }
}

/// Hands queued jobs to this replica's runners until no runner has room or no job fits.
pub async fn dispatch_once(orchestrator: &Orchestrator) -> Result<usize> {
    let mut assigned = 0;
    let mut runners: Vec<ConnectedRunner> = orchestrator.registry().snapshot();
    // The emptiest runners first spreads the load.
    runners.sort_by_key(|runner| std::cmp::Reverse(runner.free()));
    // Label sets that found no job this round. A runner whose labels are a subset of one
    // satisfies fewer tags, so it would find nothing either: with a fleet of identical
    // runners, an idle round costs one query instead of one per runner.
    let mut exhausted: Vec<&std::collections::BTreeMap<String, String>> = Vec::new();
    for runner in &runners {
        if exhausted.iter().any(|labels| runner.labels.iter().all(|(k, v)| labels.get(k) == Some(v))) {
            continue;
        }
        for _ in 0..runner.free() {
            if !assign_one(orchestrator, runner).await? {
                exhausted.push(&runner.labels);
                break;
            }
            assigned += 1;
        }
    }
    Ok(assigned)
}

/// Claims one job for `runner` and pushes it; `false` when no queued job fits.
async fn assign_one(orchestrator: &Orchestrator, runner: &ConnectedRunner) -> Result<bool> {
    let Some((job, first_sequence)) = orchestrator.store().claim_job(runner.id, &runner.labels).await? else {
        return Ok(false);
    };
    // The job's trace: how long it was queued (the first time; a requeued job's wait is
    // in its earlier attempt's spans), then this dispatch, whose context the runner gets.
    if let (Some(trace), 1) = (&job.trace, job.attempt) {
        let attributes = vec![
            KeyValue::new("job", job.id.to_string()),
            KeyValue::new("pipeline", job.pipeline_name.clone()),
            KeyValue::new("runner", runner.id.to_string()),
        ];
        rivet_telemetry::trace::record_interval("queued", trace, job.created_at.into(), attributes);
    }
    let span = tracing::info_span!("dispatch", job = %job.id, runner = %runner.id, attempt = job.attempt);
    rivet_telemetry::trace::set_parent(&span, job.trace.as_ref());
    deliver(orchestrator, runner, job, first_sequence).instrument(span).await
}

/// Pushes a claimed job to its runner; puts it back when it cannot be delivered.
async fn deliver(
    orchestrator: &Orchestrator,
    runner: &ConnectedRunner,
    job: JobRecord,
    first_sequence: u64,
) -> Result<bool> {
    let assignment = job.assignment();
    // The claim in the database is what assigns the job; a coordinator that is down now
    // only delays the lease to the runner's first heartbeat (`leases::renew`).
    if let Err(err) = orchestrator.coord().grant_lease(assignment, orchestrator.config().lease_ttl()).await {
        tracing::warn!(%assignment, error = %err, "cannot grant the lease now; the runner's heartbeat will");
    }
    orchestrator.registry().add_job(runner.id, job.id);
    let pipeline = orchestrator.pipeline_version(job.pipeline_id).await?;
    let plugins = match &pipeline {
        Some(pipeline) => orchestrator.pinned_sources(&pipeline.plugins).await,
        None => Ok(Vec::new()),
    };
    let sent = match (pipeline, plugins) {
        (_, Err(err)) => {
            tracing::error!(job = %job.id, error = %err, "the plugins of a claimed job cannot be read");
            false
        }
        (Some(pipeline), Ok(plugins)) => {
            // Only the secrets the pipeline declares, for this runner alone; `None` when
            // they cannot be delivered, and the job has been failed.
            let Some(secrets) = secrets::for_assignment(orchestrator, runner.id, &job, &pipeline).await? else {
                return Ok(true);
            };
            let mut message = assign_job(&job, &pipeline, first_sequence, orchestrator.config().job_timeout());
            message.secrets = secrets;
            message.plugins = plugins;
            message.trace = rivet_telemetry::trace::traceparent(&tracing::Span::current());
            orchestrator.registry().send(runner.id, ToRunner::Assign(message)).await
        }
        (None, Ok(_)) => {
            tracing::error!(job = %job.id, "the pipeline of a claimed job is gone");
            false
        }
    };
    if sent {
        orchestrator.metrics().assigned(&job);
        tracing::info!(job = %job.id, runner = %runner.id, attempt = job.attempt, "job assigned");
    } else {
        // The runner went away between the claim and the push: put the job back.
        orchestrator.registry().remove_job(runner.id, job.id);
        let message = "the runner disconnected before it received the job";
        orchestrator.requeue_job(Some(runner.id), assignment, Requeue::NotDelivered, message).await?;
        orchestrator.coord().release_lease(assignment).await?;
    }
    orchestrator.job_changed(job.id).await;
    Ok(sent)
}

/// The assignment message for a claimed job.
fn assign_job(job: &JobRecord, pipeline: &PipelineRecord, first_sequence: u64, timeout: Option<Duration>) -> AssignJob {
    AssignJob {
        assignment: job.assignment(),
        pipeline_name: pipeline.name.clone(),
        source: pipeline.source.clone(),
        file_name: pipeline.file_name.clone(),
        inputs: job.inputs.clone(),
        // Filled in by `assign_one` (`domain::secrets::for_assignment`), for the assigned
        // runner only.
        secrets: Default::default(),
        first_sequence,
        timeout,
        // Filled in by `assign_one` with the pinned sources (`Orchestrator::pinned_sources`).
        plugins: Vec::new(),
        // Filled in by `assign_one` with its `dispatch` span's context.
        trace: None,
        origin: job.origin.clone(),
    }
}
