//! How a job ends early, and the words every stage is reported with then.
//!
//! A job stops early for one of a few reasons: a cancel, the job's timeout, the current
//! stage's timeout, or the runner being unable to keep its log (the spill limit). Whoever
//! notices first records a [`StageFailure`] in the job's context; the stage driver (when the
//! script unwinds in time) or the supervisor (when it does not) reports the current stage
//! with it and every later stage as skipped, using the messages made here, so both paths
//! say the same thing.

use rivet_core::{FailureReason, JobState, StageState};

/// How the stages ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finish {
    pub state: JobState,
    pub reason: Option<FailureReason>,
    pub message: String,
}

impl Finish {
    pub(crate) fn failed(reason: FailureReason, message: String) -> Self {
        Finish { state: JobState::Failed, reason: Some(reason), message }
    }

    /// The end of a job whose stage `stage` (empty when no stage was running) failed.
    pub(crate) fn of_failure(stage: &str, why: &StageFailure) -> Self {
        let state = match why.state {
            StageState::Cancelled => JobState::Cancelled,
            StageState::TimedOut => JobState::TimedOut,
            _ => JobState::Failed,
        };
        let message = if stage.is_empty() { why.message.clone() } else { format!("stage `{stage}`: {}", why.message) };
        Finish { state, reason: Some(why.reason), message }
    }
}

/// Why a stage did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StageFailure {
    pub state: StageState,
    pub reason: FailureReason,
    pub message: String,
    /// The stage whose own timeout this is; `None` for stops that concern the whole job.
    pub stage: Option<String>,
}

impl StageFailure {
    /// A stop of the whole job: cancelled or timed out.
    pub(crate) fn stopped(reason: FailureReason, message: String) -> Self {
        let state = if reason == FailureReason::Cancelled { StageState::Cancelled } else { StageState::TimedOut };
        StageFailure { state, reason, message, stage: None }
    }

    /// The job was cancelled.
    pub(crate) fn cancelled() -> Self {
        StageFailure::stopped(FailureReason::Cancelled, "the job was cancelled".to_owned())
    }

    /// A failure of the runner itself that ends the job.
    pub(crate) fn internal(message: String) -> Self {
        StageFailure { state: StageState::Failed, reason: FailureReason::Internal, message, stage: None }
    }

    /// Whether this stop ends `stage` even if its script had just returned successfully:
    /// it was that stage's own timeout.
    pub(crate) fn ends(&self, stage: &str) -> bool {
        self.stage.as_deref() == Some(stage)
    }
}

/// The message of a stage that is not run because `failed` (empty when the stop came
/// between stages) ended with `why`.
pub(crate) fn skip_message(failed: &str, why: &StageFailure) -> String {
    match why.state {
        StageState::Cancelled => "not run: the job was cancelled".to_owned(),
        StageState::TimedOut if failed.is_empty() => "not run: the job timed out".to_owned(),
        _ if failed.is_empty() => format!("not run: {}", why.message),
        _ => format!("not run: stage `{failed}` did not succeed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_stages_say_why() {
        let timeout = StageFailure::stopped(FailureReason::Timeout, "the job timed out after 2s".to_owned());
        assert_eq!(skip_message("", &StageFailure::cancelled()), "not run: the job was cancelled");
        assert_eq!(skip_message("", &timeout), "not run: the job timed out");
        assert_eq!(skip_message("build", &timeout), "not run: stage `build` did not succeed");
        assert_eq!(skip_message("", &StageFailure::internal("disk full".to_owned())), "not run: disk full");
    }

    #[test]
    fn a_failure_names_its_stage() {
        let finish = Finish::of_failure("build", &StageFailure::cancelled());
        assert_eq!(finish.state, JobState::Cancelled);
        assert_eq!(finish.message, "stage `build`: the job was cancelled");
        assert_eq!(Finish::of_failure("", &StageFailure::cancelled()).message, "the job was cancelled");
    }
}
