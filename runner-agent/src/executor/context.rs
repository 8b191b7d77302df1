//! The state of one running job that the stage driver, the runtime modules and the process
//! tasks share: where events go, the log's sequence counter, secret masking, outputs, the
//! container stack and the stop signal.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::Utc;
use podman_api::Podman;
use rivet_core::model::StageNetwork;
use rivet_core::{Assignment, FailureReason, LogLevel, LogLine, ResolvedInputs};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ExecutorConfig;
use crate::job::{EventSink, JobEvent};
use crate::runtime::budget::Budget;

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
    /// Cancelled when the job must stop; [`JobContext::stop_reason`] says why.
    pub stop: CancellationToken,
    /// Process tasks and container removals, waited for before the job reports its end.
    pub tasks: TaskTracker,
    pub budget: Budget,
    sink: Arc<dyn EventSink>,
    masker: Masker,
    /// The next log sequence number; the lock also keeps lines in sequence order.
    next_sequence: Mutex<u64>,
    stop_reason: Mutex<Option<FailureReason>>,
    stage: Mutex<String>,
    network: Mutex<StageNetwork>,
    stack: Mutex<Vec<String>>,
    images: Mutex<HashSet<String>>,
    outputs: Mutex<Outputs>,
    processes: AtomicU64,
    /// The Lua threads the runner drives asynchronously (see `runtime::call_driven`).
    driven: Mutex<HashSet<usize>>,
}

/// What a job context is made from.
pub(crate) struct ContextParts {
    pub assignment: Assignment,
    pub config: ExecutorConfig,
    pub podman: Podman,
    pub handle: Handle,
    pub workspace: PathBuf,
    pub inputs: ResolvedInputs,
    pub secrets: Vec<String>,
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
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            budget,
            sink: parts.sink,
            masker: Masker::new(&parts.secrets),
            next_sequence: Mutex::new(parts.first_sequence),
            stop_reason: Mutex::new(None),
            stage: Mutex::new(String::new()),
            network: Mutex::new(StageNetwork::Default),
            stack: Mutex::new(Vec::new()),
            images: Mutex::new(HashSet::new()),
            outputs: Mutex::new(Outputs::default()),
            processes: AtomicU64::new(0),
            driven: Mutex::new(HashSet::new()),
        }
    }

    /// Logs `text` under `stage`, with secrets masked and the next sequence number.
    pub(crate) fn log_to(&self, stage: &str, level: LogLevel, text: &str) {
        let text = self.masker.mask(text).into_owned();
        let mut next = lock(&self.next_sequence);
        let line = LogLine {
            sequence: *next,
            time: Utc::now(),
            level,
            stage: stage.to_owned(),
            text,
            attempt: self.assignment.attempt,
        };
        *next += 1;
        self.sink.emit(self.assignment, JobEvent::Log(line));
    }

    /// Logs `text` under the current stage.
    pub(crate) fn log(&self, level: LogLevel, text: &str) {
        let stage = self.stage();
        self.log_to(&stage, level, text);
    }

    /// The sequence number of the last line logged (`first_sequence - 1` when none).
    pub(crate) fn last_sequence(&self) -> u64 {
        lock(&self.next_sequence).saturating_sub(1)
    }

    /// Emits a stage event; messages have secrets masked like log lines.
    pub(crate) fn emit(&self, event: JobEvent) {
        let event = match event {
            JobEvent::StageFinished { stage, state, failure_reason, message, at } => {
                JobEvent::StageFinished { stage, state, failure_reason, message: self.mask(&message), at }
            }
            other => other,
        };
        self.sink.emit(self.assignment, event);
    }

    pub(crate) fn mask(&self, text: &str) -> String {
        self.masker.mask(text).into_owned()
    }

    pub(crate) fn stage(&self) -> String {
        lock(&self.stage).clone()
    }

    /// Enters `stage`, whose processes run in `image` unless `container.with` says otherwise.
    pub(crate) fn enter_stage(&self, stage: &str, image: &str, network: StageNetwork) {
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

    /// Asks the job to stop for `reason`; the first reason given wins.
    pub(crate) fn request_stop(&self, reason: FailureReason) {
        lock(&self.stop_reason).get_or_insert(reason);
        self.stop.cancel();
    }

    /// Why the job is stopping, once it is.
    pub(crate) fn stop_reason(&self) -> Option<FailureReason> {
        *lock(&self.stop_reason)
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
        self.outputs().values.iter().map(|(key, value)| (key.clone(), self.mask(value))).collect()
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

/// Replaces every secret value in a text with `***`.
#[derive(Debug, Default)]
pub(crate) struct Masker {
    /// Values to hide, longest first so that a secret containing another is hidden whole.
    values: Vec<String>,
}

impl Masker {
    pub(crate) fn new(secrets: &[String]) -> Self {
        let mut values: Vec<String> = Vec::new();
        for secret in secrets {
            // Output is logged line by line, so each line of a multi-line secret is hidden too.
            let parts = std::iter::once(secret.as_str()).chain(secret.lines());
            for part in parts.map(|part| part.trim_end_matches('\r')) {
                if !part.is_empty() && !values.iter().any(|value| value == part) {
                    values.push(part.to_owned());
                }
            }
        }
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        Masker { values }
    }

    pub(crate) fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for value in &self.values {
            if text.contains(value.as_str()) {
                text = Cow::Owned(text.replace(value.as_str(), "***"));
            }
        }
        text
    }
}

/// The job's outputs, with limits so a script cannot grow them without bound.
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

impl Outputs {
    pub(crate) fn set(&mut self, key: &str, value: String) -> Result<(), String> {
        if key.is_empty() || key.len() > MAX_OUTPUT_KEY {
            return Err(format!("output keys must be 1 to {MAX_OUTPUT_KEY} bytes long"));
        }
        let old = self.values.get(key).map(|old| key.len() + old.len()).unwrap_or(0);
        if old == 0 && self.values.len() >= MAX_OUTPUTS {
            return Err(format!("a job may set at most {MAX_OUTPUTS} outputs"));
        }
        let bytes = self.bytes - old + key.len() + value.len();
        if bytes > MAX_OUTPUT_BYTES {
            return Err(format!("outputs may hold at most {MAX_OUTPUT_BYTES} bytes in all"));
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

    fn check(secrets: &[&str], text: &str, expect: &str) {
        let masker = Masker::new(&secrets.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(masker.mask(text), expect);
    }

    #[test]
    fn masks_secrets() {
        check(&["hunter2"], "password: hunter2, again hunter2", "password: ***, again ***");
        check(&["abc", "abcdef"], "x abcdef y abc", "x *** y ***");
        check(&["line one\nline two"], "got line two here", "got *** here");
        check(&[""], "nothing to hide", "nothing to hide");
        check(&[], "nothing to hide", "nothing to hide");
    }

    #[test]
    fn outputs_have_limits() {
        let mut outputs = Outputs::default();
        assert!(outputs.set("a", "1".into()).is_ok());
        assert!(outputs.set("a", "22".into()).is_ok());
        assert_eq!(outputs.get("a"), Some("22"));
        assert!(outputs.set("", "x".into()).is_err());
        assert!(outputs.set("big", "x".repeat(MAX_OUTPUT_BYTES)).is_err());
        for i in 1..MAX_OUTPUTS {
            assert!(outputs.set(&format!("k{i}"), String::new()).is_ok());
        }
        assert!(outputs.set("one-too-many", String::new()).is_err());
        assert!(outputs.set("a", "still replaceable".into()).is_ok());
    }
}
