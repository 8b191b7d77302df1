//! The contract between the connection layer (which talks to the orchestrator) and the job
//! executor (which runs a job's stages in containers).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rivet_core::{Assignment, FailureReason, JobState, LogLine, StageState};

/// A job to run, as the orchestrator assigned it: the runner protocol's assignment.
pub type JobSpec = rivet_core::protocol::AssignJob;

/// Something that happened while a job ran.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// A stage started.
    StageStarted {
        /// The stage's name.
        stage: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A stage ended (also for skipped stages, with state `skipped`).
    StageFinished {
        /// The stage's name.
        stage: String,
        /// How it ended.
        state: StageState,
        /// Why it failed, when it did.
        failure_reason: Option<FailureReason>,
        /// A human-readable explanation.
        message: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A log line, numbered in order from `JobSpec::first_sequence`.
    Log(LogLine),
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    /// A terminal state: succeeded, failed, cancelled or timed out.
    pub state: JobState,
    /// Why it failed, when it did.
    pub failure_reason: Option<FailureReason>,
    /// A human-readable explanation.
    pub message: String,
    /// The sequence of the last log line emitted (first_sequence - 1 when none).
    pub last_sequence: u64,
    /// Outputs set with `output.set`.
    pub outputs: BTreeMap<String, String>,
}

/// Receives a job's events. `emit` never blocks: the connection layer buffers events
/// (bounded in memory, spilled to disk) until the orchestrator has acknowledged them.
pub trait EventSink: Send + Sync + 'static {
    /// Records one event of the job running under `assignment`.
    fn emit(&self, assignment: Assignment, event: JobEvent);

    /// Records one event, or says why it could not. The executor reports through this: it
    /// does not count a refused log line, and it ends the job, since a line it cannot
    /// deliver would leave a gap in the log. Sinks that never refuse keep the default.
    fn try_emit(&self, assignment: Assignment, event: JobEvent) -> Result<(), SinkError> {
        self.emit(assignment, event);
        Ok(())
    }
}

/// Why a sink could not keep an event.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The job's unacknowledged log lines would pass the per-job spill limit.
    #[error(
        "the job's unacknowledged log exceeds the {} spill limit of this runner \
         (max_log_spill_bytes): the orchestrator has not confirmed its lines",
        crate::config::human_bytes(*limit)
    )]
    SpillFull {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The spill file could not be written.
    #[error("cannot spill the job's log lines to disk: {0}")]
    Spill(#[from] std::io::Error),
}
