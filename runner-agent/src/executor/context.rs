//! The state of one running job that the stage driver, the runtime modules, the process
//! tasks and the supervisor share: where events go, the log's sequence counter and budget,
//! secret masking, outputs, the container stack and the stop signal.
//!
//! Every event goes through [`JobContext::emit`] or [`JobContext::log_to`], under one lock
//! that also records which stages were reported. That lock is what lets the supervisor
//! abandon a job thread that is stuck: it seals the report (later events of the thread are
//! dropped) and reports the stages the thread did not, so each stage ends exactly once.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::Utc;
use podman_api::Podman;
use rivet_core::model::StageNetwork;
use rivet_core::text::{MAX_MESSAGE_BYTES, truncate, truncate_owned};
use rivet_core::{Assignment, FailureReason, LogLevel, LogLine, ResolvedInputs, StageState};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::mask::Masker;
use super::stop::{StageFailure, skip_message};
use super::supervisor::StageClock;
use crate::config::{ExecutorConfig, human_bytes};
use crate::job::{EventSink, JobEvent};
use crate::runtime::budget::Budget;

/// The bytes a log line costs besides its text and stage name (sequence, time, level and
/// framing on the wire; a generous bound). Log budgets and batch sizes count it, so that
/// a flood of empty lines is bounded as well as one long line.
pub const LINE_OVERHEAD: usize = 64;

/// What a log line costs against the job's log budget and a batch's size.
pub fn line_cost(line: &LogLine) -> usize {
    line.text.len() + line.stage.len() + LINE_OVERHEAD
}

/// Locks a mutex, ignoring poisoning: every value behind these locks stays valid even if a
/// holder panicked.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One running job.
pub(crate) struct JobContext {
    pub assignment: Assignment,
    pub config: ExecutorConfig,
    pub podman: Podman,
    /// The runtime that does the job's Podman I/O; the Lua thread runs its own.
    pub handle: Handle,
    /// The job's workspace on the host.
    pub workspace: PathBuf,
    pub inputs: ResolvedInputs,
    /// What started the job (`job.origin()`).
    pub origin: rivet_core::JobOrigin,
    /// Cancelled when the job must stop; [`JobContext::stop_failure`] says why.
    pub stop: CancellationToken,
    /// Process tasks and container removals, waited for before the job reports its end.
    pub tasks: TaskTracker,
    pub budget: Budget,
    /// The running stage's deadline, published by the stage driver for the supervisor.
    pub stage_clock: watch::Sender<Option<StageClock>>,
    sink: Arc<dyn EventSink>,
    /// The values of the secrets the pipeline declared, for `secret.get`; dropped with
    /// the job.
    secrets: BTreeMap<String, String>,
    masker: Arc<Masker>,
    /// What was reported; the lock also keeps lines in sequence order.
    reports: Mutex<Reports>,
    stop_why: Mutex<Option<StageFailure>>,
    stage: Mutex<String>,
    network: Mutex<StageNetwork>,
    stack: Mutex<Vec<String>>,
    images: Mutex<HashSet<String>>,
    outputs: Mutex<Outputs>,
    processes: AtomicU64,
    /// The Lua threads the runner drives asynchronously (see `runtime::call_driven`).
    driven: Mutex<HashSet<usize>>,
}

/// What the job has told the sink so far.
#[derive(Debug, Default)]
struct Reports {
    /// The next log sequence number.
    next_sequence: u64,
    /// Set when the job's thread is abandoned: nothing it does is reported any more.
    sealed: bool,
    /// Bytes of log counted against the job's log budget (see [`line_cost`]).
    log_bytes: u64,
    /// Whether the log budget is spent (and its one notice logged).
    log_full: bool,
    /// The pipeline's stages in order, once it is loaded.
    stages: Vec<String>,
    /// The stages reported finished (or skipped).
    finished: HashSet<String>,
    /// The stage being run (its condition or its script), until it is reported finished.
    current: Option<String>,
}

/// What a job context is made from.
pub(crate) struct ContextParts {
    pub assignment: Assignment,
    pub config: ExecutorConfig,
    pub podman: Podman,
    pub handle: Handle,
    pub workspace: PathBuf,
    pub inputs: ResolvedInputs,
    pub origin: rivet_core::JobOrigin,
    pub secrets: BTreeMap<String, String>,
    pub first_sequence: u64,
    pub sink: Arc<dyn EventSink>,
}

impl JobContext {
    pub(crate) fn new(parts: ContextParts) -> Self {
        let budget = Budget::new(parts.config.lua_time_budget());
        JobContext {
            assignment: parts.assignment,
            config: parts.config,
            podman: parts.podman,
            handle: parts.handle,
            workspace: parts.workspace,
            inputs: parts.inputs,
            origin: parts.origin,
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            budget,
            stage_clock: watch::Sender::new(None),
            sink: parts.sink,
            masker: Arc::new(Masker::new(parts.secrets.values().map(String::as_str))),
            secrets: parts.secrets,
            reports: Mutex::new(Reports { next_sequence: parts.first_sequence, ..Reports::default() }),
            stop_why: Mutex::new(None),
            stage: Mutex::new(String::new()),
            network: Mutex::new(StageNetwork::Default),
            stack: Mutex::new(Vec::new()),
            images: Mutex::new(HashSet::new()),
            outputs: Mutex::new(Outputs::default()),
            processes: AtomicU64::new(0),
            driven: Mutex::new(HashSet::new()),
        }
    }

    /// Logs `text` under `stage`, with secrets masked, cut to the line limit, and the next
    /// sequence number. Once the job's log budget is spent, one notice says so and later
    /// lines are dropped; the job goes on.
    pub(crate) fn log_to(&self, stage: &str, level: LogLevel, text: &str) {
        // A line that will be dropped costs no masking; one that is kept is masked whole
        // (a secret may straddle the cut) and copied only up to the limit.
        let dropped = |reports: &Reports| reports.sealed || reports.log_full;
        if dropped(&lock(&self.reports)) {
            return;
        }
        let masked = self.masker.mask(text);
        let text = truncate(&masked, self.config.max_log_line_bytes).into_owned();
        let mut reports = lock(&self.reports);
        if dropped(&reports) {
            return;
        }
        let mut line = LogLine {
            sequence: reports.next_sequence,
            time: Utc::now(),
            level,
            stage: stage.to_owned(),
            text,
            attempt: self.assignment.attempt,
        };
        let cost = line_cost(&line) as u64;
        if reports.log_bytes.saturating_add(cost) > self.config.max_job_log_bytes {
            reports.log_full = true;
            line.level = LogLevel::Warning;
            line.text = format!(
                "the job's log reached its {} budget (max_job_log_bytes): later lines are dropped",
                human_bytes(self.config.max_job_log_bytes)
            );
        } else {
            reports.log_bytes += cost;
        }
        match self.sink.try_emit(self.assignment, JobEvent::Log(line)) {
            Ok(()) => reports.next_sequence += 1,
            Err(err) => {
                // The line is not counted, so the log keeps no gap; the job cannot go on
                // without losing lines, so it ends.
                reports.log_full = true;
                drop(reports);
                self.request_stop(StageFailure::internal(err.to_string()));
            }
        }
    }

    /// Logs `text` under the current stage.
    pub(crate) fn log(&self, level: LogLevel, text: &str) {
        let stage = self.stage();
        self.log_to(&stage, level, text);
    }

    /// The sequence number of the last line logged (`first_sequence - 1` when none).
    pub(crate) fn last_sequence(&self) -> u64 {
        lock(&self.reports).next_sequence.saturating_sub(1)
    }

    /// Remembers the pipeline's stages, so that a supervisor that abandons the job can
    /// report those its thread did not.
    pub(crate) fn set_stages(&self, stages: Vec<String>) {
        lock(&self.reports).stages = stages;
    }

    /// Emits a stage event; messages have secrets masked like log lines and are cut to
    /// [`MAX_MESSAGE_BYTES`].
    pub(crate) fn emit(&self, event: JobEvent) {
        let mut reports = lock(&self.reports);
        if reports.sealed {
            return;
        }
        let event = match event {
            JobEvent::StageFinished { stage, state, failure_reason, message, at } => {
                reports.finished.insert(stage.clone());
                if reports.current.as_ref() == Some(&stage) {
                    reports.current = None;
                }
                JobEvent::StageFinished { stage, state, failure_reason, message: self.message(&message), at }
            }
            other => other,
        };
        self.sink.emit(self.assignment, event);
    }

    /// Seals the report because the job's thread is abandoned, and reports what it did
    /// not: the running stage ends with `why` (with `note` added), later stages are
    /// skipped. Returns the name of the running stage, if one was.
    pub(crate) fn abandon(&self, why: &StageFailure, note: &str) -> Option<String> {
        let mut reports = lock(&self.reports);
        reports.sealed = true;
        let current = reports.current.take().filter(|stage| !reports.finished.contains(stage));
        let failed = current.clone().unwrap_or_default();
        let unfinished: Vec<String> =
            reports.stages.iter().filter(|stage| !reports.finished.contains(*stage)).cloned().collect();
        for stage in unfinished {
            let (state, reason, message) = if Some(&stage) == current.as_ref() {
                (why.state, Some(why.reason), format!("{}{note}", why.message))
            } else {
                (StageState::Skipped, None, skip_message(&failed, why))
            };
            reports.finished.insert(stage.clone());
            let message = self.message(&message);
            self.sink.emit(
                self.assignment,
                JobEvent::StageFinished { stage, state, failure_reason: reason, message, at: Utc::now() },
            );
        }
        current
    }

    /// The value of the declared secret `name`.
    pub(crate) fn secret(&self, name: &str) -> Option<&str> {
        self.secrets.get(name).map(String::as_str)
    }

    /// The job's secret masker, for the readers of process output.
    pub(crate) fn masker(&self) -> &Arc<Masker> {
        &self.masker
    }

    /// `text` as users may see it: secrets masked, cut to [`MAX_MESSAGE_BYTES`].
    pub(crate) fn message(&self, text: &str) -> String {
        truncate(&self.masker.mask(text), MAX_MESSAGE_BYTES).into_owned()
    }

    pub(crate) fn stage(&self) -> String {
        lock(&self.stage).clone()
    }

    /// Enters `stage`, whose processes run in `image` unless `container.with` says otherwise.
    pub(crate) fn enter_stage(&self, stage: &str, image: &str, network: StageNetwork) {
        lock(&self.reports).current = Some(stage.to_owned());
        *lock(&self.stage) = stage.to_owned();
        *lock(&self.network) = network;
        *lock(&self.stack) = vec![image.to_owned()];
    }

    /// The network of the running stage's containers.
    pub(crate) fn current_network(&self) -> StageNetwork {
        *lock(&self.network)
    }

    /// The image processes run in now: the top of the container stack.
    pub(crate) fn current_image(&self) -> String {
        lock(&self.stack).last().cloned().unwrap_or_else(|| self.config.default_image.clone())
    }

    pub(crate) fn push_image(&self, image: &str) {
        lock(&self.stack).push(image.to_owned());
    }

    pub(crate) fn pop_image(&self) {
        let mut stack = lock(&self.stack);
        // The stage's own image stays at the bottom.
        if stack.len() > 1 {
            stack.pop();
        }
    }

    /// Whether `image` was already found or pulled during this job.
    pub(crate) fn image_known(&self, image: &str) -> bool {
        lock(&self.images).contains(image)
    }

    pub(crate) fn remember_image(&self, image: &str) {
        lock(&self.images).insert(image.to_owned());
    }

    /// Asks the job to stop because of `why`; the first reason given wins.
    pub(crate) fn request_stop(&self, why: StageFailure) {
        lock(&self.stop_why).get_or_insert(why);
        self.stop.cancel();
    }

    /// Why the job is stopping, once it is. A stop without a recorded reason (the job's
    /// future was dropped) counts as a cancel.
    pub(crate) fn stop_failure(&self) -> Option<StageFailure> {
        let why = lock(&self.stop_why).clone();
        why.or_else(|| self.stop.is_cancelled().then(StageFailure::cancelled))
    }

    /// The failure reason of the stop, once the job is stopping.
    pub(crate) fn stop_reason(&self) -> Option<FailureReason> {
        self.stop_failure().map(|why| why.reason)
    }

    /// A job-unique name for the next process container.
    pub(crate) fn next_container_name(&self) -> String {
        let n = self.processes.fetch_add(1, Ordering::Relaxed) + 1;
        format!("rivet-{}-{}-{n}", self.assignment.job_id, self.assignment.attempt)
    }

    /// Marks the Lua thread at `key` as driven (or no longer driven) by the runner.
    pub(crate) fn set_driven(&self, key: usize, driven: bool) {
        let mut threads = lock(&self.driven);
        if driven {
            threads.insert(key);
        } else {
            threads.remove(&key);
        }
    }

    /// Whether the runner drives the Lua thread at `key`.
    pub(crate) fn is_driven(&self, key: usize) -> bool {
        lock(&self.driven).contains(&key)
    }

    pub(crate) fn outputs(&self) -> MutexGuard<'_, Outputs> {
        lock(&self.outputs)
    }

    /// The outputs, with secrets masked: they are shown to users like log lines.
    pub(crate) fn final_outputs(&self) -> BTreeMap<String, String> {
        self.outputs().values.iter().map(|(key, value)| (key.clone(), self.message(value))).collect()
    }

    /// The labels every container of this job carries.
    pub(crate) fn labels(&self) -> Vec<(String, String)> {
        vec![
            (crate::executor::LABEL_JOB.to_owned(), self.assignment.job_id.to_string()),
            (crate::executor::LABEL_ATTEMPT.to_owned(), self.assignment.attempt.to_string()),
            (crate::executor::LABEL_RUNNER.to_owned(), self.config.instance.clone()),
        ]
    }
}

/// The job's outputs, with limits so a script cannot grow them without bound: they travel
/// in the job's finish message, which must fit the gRPC message limit.
#[derive(Debug, Default)]
pub(crate) struct Outputs {
    values: BTreeMap<String, String>,
    bytes: usize,
}

/// The most outputs a job may set.
pub(crate) const MAX_OUTPUTS: usize = 256;
/// The longest output key, in bytes.
pub(crate) const MAX_OUTPUT_KEY: usize = 256;
/// The most bytes all outputs may hold together (keys and values).
pub(crate) const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// The longest output value, in bytes; a longer one is cut with a visible marker.
pub(crate) const MAX_OUTPUT_VALUE: usize = MAX_MESSAGE_BYTES;

impl Outputs {
    pub(crate) fn set(&mut self, key: &str, value: String) -> Result<(), String> {
        let value = truncate_owned(value, MAX_OUTPUT_VALUE);
        if key.is_empty() || key.len() > MAX_OUTPUT_KEY {
            return Err(format!("output key of {} bytes: keys must be 1 to {MAX_OUTPUT_KEY} bytes long", key.len()));
        }
        let old = self.values.get(key).map(|old| key.len() + old.len()).unwrap_or(0);
        if old == 0 && self.values.len() >= MAX_OUTPUTS {
            return Err(format!("a job may set at most {MAX_OUTPUTS} outputs (the output limit)"));
        }
        let bytes = self.bytes - old + key.len() + value.len();
        if bytes > MAX_OUTPUT_BYTES {
            return Err(format!(
                "outputs may hold at most {} KiB in all (the outputs size limit)",
                MAX_OUTPUT_BYTES / 1024
            ));
        }
        self.bytes = bytes;
        self.values.insert(key.to_owned(), value);
        Ok(())
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_have_limits() {
        let mut outputs = Outputs::default();
        assert!(outputs.set("a", "1".into()).is_ok());
        assert!(outputs.set("a", "22".into()).is_ok());
        assert_eq!(outputs.get("a"), Some("22"));
        assert!(outputs.set("", "x".into()).is_err());
        let err = outputs.set(&"k".repeat(MAX_OUTPUT_KEY + 1), String::new()).unwrap_err();
        assert_eq!(err, "output key of 257 bytes: keys must be 1 to 256 bytes long");
        // A long value is kept, cut to the value limit with a marker.
        assert!(outputs.set("long", "x".repeat(MAX_OUTPUT_VALUE * 4)).is_ok());
        let long = outputs.get("long").unwrap_or_default();
        assert!(long.len() <= MAX_OUTPUT_VALUE && long.ends_with(" bytes]"), "{}", &long[long.len() - 40..]);
        for i in 0..(MAX_OUTPUT_BYTES / MAX_OUTPUT_VALUE) {
            let _ = outputs.set(&format!("fill{i}"), "x".repeat(MAX_OUTPUT_VALUE));
        }
        assert_eq!(
            outputs.set("one-more", "x".repeat(MAX_OUTPUT_VALUE)).unwrap_err(),
            "outputs may hold at most 1024 KiB in all (the outputs size limit)"
        );
        let mut outputs = Outputs::default();
        assert!(outputs.set("a", "1".into()).is_ok());
        for i in 1..MAX_OUTPUTS {
            assert!(outputs.set(&format!("k{i}"), String::new()).is_ok());
        }
        assert_eq!(
            outputs.set("one-too-many", String::new()).unwrap_err(),
            "a job may set at most 256 outputs (the output limit)"
        );
        assert!(outputs.set("a", "still replaceable".into()).is_ok());
    }
}
