//! The job executor: runs one job's stages, each command in a container, and reports what
//! happens through an [`EventSink`].
//!
//! # How a job runs
//!
//! 1. The workspace `<workspace_root>/<job id>-<attempt>` is created; it is mounted at
//!    `/workspace` in every container of the job.
//! 2. On a thread of its own, the pipeline is loaded with [`rivet_core::load`] and the
//!    runtime modules (`log`, `input`, `output`, `container`, `process`) are installed in
//!    its Lua state.
//! 3. Stages run in order. A stage's `condition` (if any) is evaluated first; when it is
//!    false the stage is reported skipped. Otherwise the stage is reported started, its
//!    image (`container`, or the configured default) is pulled if the host lacks it, its
//!    `script` runs, and the stage is reported finished. A condition that raises fails the
//!    stage without its being reported started.
//! 4. A stage that fails ends the job: **every later stage is still reported, as skipped**,
//!    with a message saying why, so a follower sees each stage of the pipeline end exactly
//!    once.
//! 5. The job's containers are removed (a final sweep by label catches any straggler), and
//!    so is the workspace, unless the job failed and `keep_workspace_on_failure` is set.
//!
//! # One container per process
//!
//! Each `process.run` is a container of its own, created with the argv as its command
//! (entrypoint cleared, no shell), attached to, started, streamed, and removed: the way
//! `podman run` works and the way Woodpecker and Drone run steps. The alternative, one
//! long-lived container per `container.with` level with `exec` per process, needs a program
//! that idles forever in every image (images without a shell or `sleep` have none), and
//! each Podman 4.3 exec leaves two conmon processes behind for five minutes. The cost of
//! this choice: state outside `/workspace` (installed packages, files in `/tmp`) does not
//! carry from one process to the next, so a script keeps what later commands need in the
//! workspace, or chains the commands in one process. `container.with` therefore only
//! chooses the image of the processes run inside it; it pulls the image when entered.
//!
//! # Where the Lua runs
//!
//! A stage's script is Lua that may compute for up to its time budget without yielding, so
//! it must not run on a worker of the runner's runtime. Each job gets a thread with a
//! current-thread runtime that drives the script with mlua's async calls. The Podman I/O
//! that `process.run` and `container.with` wait for runs on the runner's runtime (handed
//! over with `spawn`), where Podman's HTTP connections live; the script's thread only
//! awaits the result, with the stage's Lua time budget suspended meanwhile.
//!
//! # Stopping
//!
//! Cancelling the token, the stage's timeout and the job's timeout all stop the job the
//! same way, decided by the supervisor on the caller's runtime (see `supervisor`): the
//! running process gets SIGTERM and SIGKILL after `cancel_grace_secs`, the script is given
//! that long to unwind, and the job ends `cancelled` or `timed_out`. A script stuck inside
//! a C call cannot unwind: its thread is abandoned and the job ends all the same.
//!
//! # Bounds
//!
//! Everything a job sends is bounded, so that one job cannot wedge the runner's stream:
//! each log line is cut to `max_log_line_bytes` with a visible marker (a process's line
//! while it is read, so a 50 MB line without a newline never sits in memory), the job's
//! whole log to `max_job_log_bytes` (then one notice, and later lines are dropped), stage
//! and job messages and output values to `rivet_core::text::MAX_MESSAGE_BYTES`, outputs in
//! number and total size.

mod agent;
pub(crate) mod context;
mod error;
pub(crate) mod mask;
mod output;
pub(crate) mod podman;
pub mod service;
mod stages;
mod stop;
mod supervisor;
mod watcher;
pub(crate) mod workspace;

use std::sync::Arc;
use std::time::Duration;

use podman_api::Podman;
use podman_api::opts::ContainerListFilter;
use rivet_core::{FailureReason, JobState};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use self::agent::PodmanRunner;
use self::context::{ContextParts, JobContext};
pub use self::context::{LINE_OVERHEAD, line_cost};
pub use self::error::Error;
use self::stop::Finish;
use crate::config::ExecutorConfig;
use crate::job::{EventSink, JobOutcome, JobSpec};

/// The label naming the job a container belongs to.
pub const LABEL_JOB: &str = "rivet.job";
/// The label naming the attempt of the job a container belongs to.
pub const LABEL_ATTEMPT: &str = "rivet.attempt";
/// The label marking a container as made by a runner; its value is the runner's
/// [`ExecutorConfig::instance`].
pub const LABEL_RUNNER: &str = "rivet.runner";

/// How long the end of a job waits for its processes to stop and their containers to go,
/// beyond the grace period, before it reports the job anyway (the final sweep and the next
/// start-up remove what is left).
const CLEANUP_PATIENCE: Duration = Duration::from_secs(30);

/// Runs `spec` to its end and says how it ended. Events (stage changes and log lines) go to
/// `sink` as they happen. Cancelling `cancel` stops the job within the grace period; so
/// does dropping the returned future, though then nothing is reported.
pub async fn run_job(
    spec: JobSpec,
    config: &ExecutorConfig,
    podman: &Podman,
    sink: Arc<dyn EventSink>,
    cancel: CancellationToken,
) -> JobOutcome {
    let job_deadline = spec.timeout.map(|limit| (Instant::now() + limit, limit));
    // The job's span on this runner, a child of the orchestrator's `dispatch` span; the
    // stages (on the job's own thread) and their processes are its children.
    let span = tracing::info_span!(
        "job",
        job = %spec.assignment.job_id,
        attempt = spec.assignment.attempt,
        pipeline = %spec.pipeline_name,
        state = tracing::field::Empty,
        failure_reason = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    rivet_telemetry::trace::set_parent(&span, spec.trace.as_ref());
    let dir = workspace::path(&config.workspace_root, &spec.assignment);
    let ctx = Arc::new(JobContext::new(ContextParts {
        assignment: spec.assignment,
        config: config.clone(),
        podman: podman.clone(),
        handle: tokio::runtime::Handle::current(),
        workspace: dir.clone(),
        inputs: spec.inputs,
        origin: spec.origin,
        secrets: spec.secrets,
        first_sequence: spec.first_sequence,
        sink,
    }));
    if let Err(err) = workspace::create(&dir, workspace::mapped_root(config)) {
        return outcome(&ctx, Finish::failed(err.reason(), err.to_string()));
    }

    // Dropping this future stops the job's processes and its script.
    let _stop_on_drop = ctx.stop.clone().drop_guard();
    let (done, finished) = tokio::sync::oneshot::channel();
    let job = ctx.clone();
    let stages_span = span.clone();
    let thread = std::thread::Builder::new().name(format!("rivet-job-{}", spec.assignment.job_id)).spawn(move || {
        let finish = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => {
                runtime.block_on(stages::run(job, spec.source, spec.file_name, spec.plugins).instrument(stages_span))
            }
            Err(err) => Finish::failed(FailureReason::Internal, format!("failed to start the job's runtime: {err}")),
        };
        let _ = done.send(finish);
    });
    let finish = match thread {
        Ok(_) => supervisor::supervise(ctx.clone(), finished, cancel, job_deadline).await,
        Err(err) => Finish::failed(FailureReason::Internal, Error::Thread(err.to_string()).to_string()),
    };

    // Stop whatever still runs, wait for processes and container removals, then sweep.
    ctx.stop.cancel();
    ctx.tasks.close();
    let patience = config.cancel_grace() + CLEANUP_PATIENCE;
    if tokio::time::timeout(patience, ctx.tasks.wait()).await.is_err() {
        tracing::warn!(job = %ctx.assignment, "the job's processes did not stop within {patience:?}");
    }
    if let Err(err) = podman::remove_job_containers(&ctx).await {
        tracing::warn!(job = %ctx.assignment, error = %err, "failed to remove the job's containers");
    }
    let keep = finish.state != JobState::Succeeded && config.keep_workspace_on_failure;
    if !keep && let Err(err) = workspace::remove(&dir) {
        tracing::warn!(job = %ctx.assignment, error = %err, "failed to remove the job's workspace");
    }
    span.record("state", finish.state.as_str());
    if let Some(reason) = finish.reason {
        span.record("failure_reason", reason.as_str());
        span.record("otel.status_code", "ERROR");
    }
    outcome(&ctx, finish)
}

fn outcome(ctx: &JobContext, finish: Finish) -> JobOutcome {
    JobOutcome {
        state: finish.state,
        failure_reason: finish.reason,
        message: ctx.message(&finish.message),
        last_sequence: ctx.last_sequence(),
        outputs: ctx.final_outputs(),
    }
}

/// A client of the Podman service at [`ExecutorConfig::podman_socket`].
pub fn connect(config: &ExecutorConfig) -> Result<Podman, Error> {
    Podman::new(&config.podman_socket).map_err(Error::podman("connect to the podman service"))
}

/// What [`cleanup_leftovers`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Containers carrying this runner's label.
    pub containers: usize,
    /// Workspace directories.
    pub workspaces: usize,
}

/// Removes what an earlier run of this runner left behind, e.g. after a crash: every
/// container labelled `rivet.runner=<instance>` and every workspace directory under the
/// workspace root. Call it when the runner starts, before it takes jobs.
pub async fn cleanup_leftovers(podman: &Podman, config: &ExecutorConfig) -> Result<CleanupReport, Error> {
    let filter = ContainerListFilter::LabelKeyVal(LABEL_RUNNER.to_owned(), config.instance.clone());
    let containers = podman::remove_containers(podman, vec![filter]).await?;
    let mut workspaces = 0;
    let root = &config.workspace_root;
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(CleanupReport { containers, workspaces }),
        Err(source) => return Err(Error::Workspace { path: root.clone(), source }),
    };
    for entry in entries {
        let entry = entry.map_err(|source| Error::Workspace { path: root.clone(), source })?;
        if entry.file_name().to_str().is_some_and(workspace::is_workspace_name) {
            workspace::remove(&entry.path())?;
            workspaces += 1;
        }
    }
    Ok(CleanupReport { containers, workspaces })
}
