//! The messages of the runner protocol, one enum each way with plain Rust payloads.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::job::{Assignment, FailureReason, JobState, LogLine, StageState};
use crate::model::ResolvedInputs;
use crate::plugin::PinnedPlugin;

/// A message from a runner to the orchestrator.
#[derive(Debug, Clone, PartialEq)]
pub enum FromRunner {
    /// The first message on every stream.
    Hello(Hello),
    /// Sent every heartbeat interval; renews the leases of the jobs it names.
    Heartbeat(Heartbeat),
    /// The runner took an assigned job.
    Accepted(Assignment),
    /// The runner cannot take an assigned job.
    Rejected {
        /// The assignment.
        assignment: Assignment,
        /// Why.
        reason: String,
    },
    /// A stage started.
    StageStarted(StageStarted),
    /// A stage ended.
    StageFinished(StageFinished),
    /// Log lines of one job, in sequence order.
    Logs(LogBatch),
    /// A job ended.
    Finished(JobFinished),
}

/// A message from the orchestrator to a runner. An assignment is by far the largest; the
/// others are few per job, so a box for it would save little and cost an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ToRunner {
    /// The answer to the hello.
    Welcome(Welcome),
    /// A job to run.
    Assign(AssignJob),
    /// Stop a job.
    Cancel {
        /// The assignment to stop.
        assignment: Assignment,
        /// Why (cancelled or timeout), when the orchestrator says.
        reason: Option<FailureReason>,
    },
    /// The highest log sequence of a job stored so far.
    LogAck(LogAck),
    /// Finish running jobs, take no new ones, and connect again (possibly elsewhere).
    Drain {
        /// Why, e.g. the orchestrator is shutting down.
        reason: String,
    },
    /// A report was refused, e.g. under a stale epoch: stop working on that assignment.
    Refused {
        /// The assignment the report was about.
        assignment: Assignment,
        /// Why it was refused.
        reason: String,
    },
    /// A job's finish is stored: the runner may forget the job.
    Closed(Assignment),
}

/// A job a runner still runs (or has not finished reporting), named on (re)connect and in
/// heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningJob {
    /// The assignment.
    pub assignment: Assignment,
    /// The highest log sequence the runner has produced for it.
    pub last_sequence: u64,
}

/// The first message a runner sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol versions the runner speaks.
    pub protocol_versions: Vec<u32>,
    /// Its stable id, kept across restarts.
    pub runner_id: Uuid,
    /// A human-readable name, e.g. the host name; may be empty.
    pub name: String,
    /// Its labels, e.g. os=linux, arch=x86_64.
    pub labels: BTreeMap<String, String>,
    /// How many jobs it runs at once.
    pub capacity: u32,
    /// Jobs it still runs from before this stream.
    pub running_jobs: Vec<RunningJob>,
    /// The runner's version.
    pub version: String,
}

/// A heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The jobs the runner is running (or still reporting).
    pub running_jobs: Vec<RunningJob>,
    /// Whether the runner is draining: it takes no new jobs.
    pub draining: bool,
}

/// A stage started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageStarted {
    /// The assignment.
    pub assignment: Assignment,
    /// The stage's name.
    pub stage: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A stage ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageFinished {
    /// The assignment.
    pub assignment: Assignment,
    /// The stage's name.
    pub stage: String,
    /// How it ended.
    pub state: StageState,
    /// Why it failed, when it did.
    pub failure_reason: Option<FailureReason>,
    /// A human-readable explanation.
    pub message: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Log lines of one job, in sequence order, all of the batch's attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBatch {
    /// The assignment.
    pub assignment: Assignment,
    /// The lines.
    pub lines: Vec<LogLine>,
}

/// A job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFinished {
    /// The assignment.
    pub assignment: Assignment,
    /// The final state the runner reports: succeeded, failed, cancelled or timed out.
    pub state: JobState,
    /// Why it failed, when it did.
    pub failure_reason: Option<FailureReason>,
    /// A human-readable explanation.
    pub message: String,
    /// The highest log sequence of the job; the orchestrator holds the finish until every
    /// line up to it is stored.
    pub last_sequence: u64,
    /// Outputs set with `output.set`.
    pub outputs: BTreeMap<String, String>,
}

/// The orchestrator's answer to a hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The protocol version chosen.
    pub protocol_version: u32,
    /// How long a lease lasts without a heartbeat.
    pub lease_ttl: Duration,
    /// How often to send heartbeats.
    pub heartbeat_interval: Duration,
    /// Jobs of the hello the runner must stop: they were handed to someone else.
    pub abandon: Vec<Assignment>,
    /// For each job the runner keeps, the highest log sequence stored.
    pub acks: Vec<LogAck>,
}

/// The highest log sequence stored for a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogAck {
    /// The job.
    pub job_id: Uuid,
    /// Lines up to and including this sequence are stored; the runner may drop them.
    pub sequence: u64,
}

/// A job to run, as the orchestrator assigns it.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignJob {
    /// The assignment every report is made under.
    pub assignment: Assignment,
    /// The pipeline's name.
    pub pipeline_name: String,
    /// The pipeline's Lua source.
    pub source: String,
    /// The file name of the source, for error messages.
    pub file_name: String,
    /// The validated, typed inputs.
    pub inputs: ResolvedInputs,
    /// The secrets the pipeline declared, by name.
    pub secrets: BTreeMap<String, String>,
    /// The sequence number of this attempt's first log line, from 1.
    pub first_sequence: u64,
    /// The job's overall timeout, if any.
    pub timeout: Option<Duration>,
    /// The plugins the pipeline's version is pinned to, with their sources; `require`
    /// serves only these.
    pub plugins: Vec<PinnedPlugin>,
    /// The trace context of the orchestrator's `dispatch` span: the runner's `job` span is
    /// its child. `None` when tracing is off.
    pub trace: Option<crate::trace::TraceParent>,
    /// What started the job, for `job.origin()`.
    pub origin: crate::job::JobOrigin,
}
