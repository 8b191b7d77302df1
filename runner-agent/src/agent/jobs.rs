//! The running-job table: which jobs run on this runner, each with the token that stops
//! it. A job runs on its own task and keeps running while the orchestrator is unreachable;
//! what it reports goes to the [`Outbox`], and so does its outcome when it ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rivet_core::{Assignment, FailureReason, JobState};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::agent::{JobRunner, Outbox};
use crate::job::{JobOutcome, JobSpec};

struct Running {
    assignment: Assignment,
    cancel: CancellationToken,
}

/// The jobs running here. Cheap to clone.
#[derive(Clone)]
pub(super) struct Jobs {
    runner: Arc<dyn JobRunner>,
    outbox: Outbox,
    running: Arc<Mutex<HashMap<Uuid, Running>>>,
    /// Set when the runner was told to stop now: jobs it cancels for that are not
    /// cancelled by a user (see [`stopped`]).
    stopping_now: Arc<AtomicBool>,
    tasks: TaskTracker,
}

impl Jobs {
    /// No jobs yet; `runner` runs them, reporting into `outbox`.
    pub(super) fn new(runner: Arc<dyn JobRunner>, outbox: Outbox) -> Jobs {
        Jobs { runner, outbox, running: Arc::default(), stopping_now: Arc::default(), tasks: TaskTracker::new() }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Running>> {
        // Every update is one insert or remove, so a poisoned lock is still consistent.
        self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many jobs run.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no job runs.
    pub(super) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Starts a job on its own task; its outcome goes to the outbox when it ends.
    pub(super) fn start(&self, spec: JobSpec) {
        let assignment = spec.assignment;
        let cancel = CancellationToken::new();
        self.lock().insert(assignment.job_id, Running { assignment, cancel: cancel.clone() });
        self.outbox.open(assignment, spec.first_sequence);
        let outbox = self.outbox.clone();
        let jobs = self.clone();
        let future = self.runner.run(spec, Arc::new(outbox.clone()), cancel);
        tracing::info!(%assignment, "job started");
        self.tasks.spawn(async move {
            let mut outcome = future.await;
            if jobs.stopping_now.load(Ordering::Relaxed) {
                outcome = stopped(outcome);
            }
            tracing::info!(%assignment, state = %outcome.state, "job ended");
            crate::metrics::get().job_finished(outcome.state);
            jobs.lock().remove(&assignment.job_id);
            outbox.finish(assignment.job_id, outcome);
        });
    }

    /// Asks a job to stop; it still reports how it ended.
    pub(super) fn stop(&self, job: Uuid) {
        if let Some(entry) = self.lock().get(&job) {
            entry.cancel.cancel();
        }
    }

    /// Stops every job, because the runner itself stops now.
    pub(super) fn stop_all(&self) {
        self.stopping_now.store(true, Ordering::Relaxed);
        for entry in self.lock().values() {
            tracing::warn!(assignment = %entry.assignment, "stopping the job: the runner is stopping now");
            entry.cancel.cancel();
        }
    }
}

/// A job the runner cancelled because it was itself told to stop now is reported failed,
/// not cancelled: no user cancelled it.
fn stopped(outcome: JobOutcome) -> JobOutcome {
    if outcome.state != JobState::Cancelled {
        return outcome;
    }
    JobOutcome {
        state: JobState::Failed,
        failure_reason: Some(FailureReason::Cancelled),
        message: "the runner was stopped while the job ran".to_owned(),
        ..outcome
    }
}
