//! Caps on what a runner reports, applied by the orchestrator whatever the runner capped.
//!
//! A pipeline is untrusted, and a runner reports what its pipeline produced: log lines,
//! stage names, failure messages, outputs. The runner caps them before it sends them, but
//! the orchestrator does not rely on that: every stored string is cut here, with the
//! visible marker of [`rivet_core::text::truncate`], so that a runner that ignores its caps
//! (a bug, an old version, a compromised host) still cannot make the database, the fan-out
//! or a follower hold more than these limits.

use std::collections::BTreeMap;

use rivet_core::LogLine;
use rivet_core::text::{MAX_LOG_LINE_BYTES, MAX_MESSAGE_BYTES, truncate_owned};

use crate::domain::error::{Error, Result};

/// The longest stage name stored, in bytes (log lines carry it too).
pub const MAX_STAGE_NAME_BYTES: usize = 256;
/// The most bytes of log text (and stage names) stored from one log batch. The lines past
/// it are not stored; the ack tells the runner to send them again, in the next batch. At
/// least one line is always stored, so a batch of long lines still progresses.
pub const MAX_LOG_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// The most lines stored from one log batch (empty lines cost rows, not bytes); the rest
/// wait for the next batch, as with [`MAX_LOG_BATCH_BYTES`].
pub const MAX_LOG_BATCH_LINES: usize = 10_000;
/// The most stages recorded for one job: a stage a runner reports past it is not stored.
/// Validation caps a pipeline's stages far below; this holds against a runner that makes
/// stage names up.
pub const MAX_STAGES_PER_JOB: u64 = 1_000;
/// The most outputs a job keeps.
pub const MAX_OUTPUTS: usize = 100;
/// The longest output name kept, in bytes.
pub const MAX_OUTPUT_KEY_BYTES: usize = 256;
/// The longest output value kept, in bytes.
pub const MAX_OUTPUT_VALUE_BYTES: usize = MAX_MESSAGE_BYTES;
/// The most bytes of output names and values a job keeps in all: a job is read whole by
/// `GetJob`, `ListJobs` and `WatchJob`, whose responses must stay far below the message
/// limit.
pub const MAX_OUTPUTS_BYTES: usize = 64 * 1024;
/// The longest runner name, version, label key or label value accepted in a hello, in bytes.
pub const MAX_RUNNER_TEXT_BYTES: usize = 256;
/// The most labels a runner may carry.
pub const MAX_RUNNER_LABELS: usize = 64;

/// A log line as it may be stored: its text at most [`MAX_LOG_LINE_BYTES`], its stage name
/// at most [`MAX_STAGE_NAME_BYTES`].
pub fn log_line(mut line: LogLine) -> LogLine {
    line.text = truncate_owned(line.text, MAX_LOG_LINE_BYTES);
    line.stage = stage_name(line.stage);
    line
}

/// The bytes a stored line counts against [`MAX_LOG_BATCH_BYTES`].
pub fn log_line_bytes(line: &LogLine) -> usize {
    line.text.len() + line.stage.len()
}

/// A stage name as it may be stored.
pub fn stage_name(name: String) -> String {
    truncate_owned(name, MAX_STAGE_NAME_BYTES)
}

/// A failure message (of a job, a stage, or a rejection) as it may be stored.
pub fn message(text: String) -> String {
    truncate_owned(text, MAX_MESSAGE_BYTES)
}

/// A job's outputs as they may be stored, and the message to store with them: the first
/// outputs by name, at most [`MAX_OUTPUTS`] of them and [`MAX_OUTPUTS_BYTES`] in all, each
/// name and value truncated. When some were dropped, the message says so.
pub fn outputs(
    outputs: impl IntoIterator<Item = (String, String)>,
    message: String,
) -> (BTreeMap<String, String>, String) {
    let sorted: BTreeMap<String, String> = outputs.into_iter().collect();
    let total = sorted.len();
    let mut kept = BTreeMap::new();
    let mut bytes = 0;
    for (key, value) in sorted {
        let (key, value) = (truncate_owned(key, MAX_OUTPUT_KEY_BYTES), truncate_owned(value, MAX_OUTPUT_VALUE_BYTES));
        if kept.len() == MAX_OUTPUTS || bytes + key.len() + value.len() > MAX_OUTPUTS_BYTES {
            break;
        }
        bytes += key.len() + value.len();
        kept.insert(key, value);
    }
    let message = if kept.len() < total {
        let note = format!(
            "{} of the job's {total} outputs were dropped: a job keeps at most {MAX_OUTPUTS} outputs and \
             {} KiB of output names and values",
            total - kept.len(),
            MAX_OUTPUTS_BYTES / 1024
        );
        if message.is_empty() { note } else { format!("{message}; {note}") }
    } else {
        message
    };
    (kept, self::message(message))
}

/// Refuses a runner's self-description when a field is over its limit: these come from
/// the runner's configuration, so its operator should hear about it rather than see it cut.
/// `what` names the message the fields came in (`hello`, `registration`, `token`).
pub fn check_runner(what: &str, name: &str, version: &str, labels: &BTreeMap<String, String>) -> Result<()> {
    let too_long = |field: &str, text: &str| {
        Error::invalid(
            field,
            format!(
                "is {} bytes, over the {MAX_RUNNER_TEXT_BYTES}-byte limit of runner names, versions and labels",
                text.len()
            ),
        )
    };
    if name.len() > MAX_RUNNER_TEXT_BYTES {
        return Err(too_long(&format!("{what}.name"), name));
    }
    if version.len() > MAX_RUNNER_TEXT_BYTES {
        return Err(too_long(&format!("{what}.version"), version));
    }
    if labels.len() > MAX_RUNNER_LABELS {
        return Err(Error::invalid(
            &format!("{what}.labels"),
            format!("has {} labels, over the limit of {MAX_RUNNER_LABELS} labels per runner", labels.len()),
        ));
    }
    for (key, value) in labels {
        let field = format!("{what}.labels.{}", truncate_owned(key.clone(), 64));
        if key.len() > MAX_RUNNER_TEXT_BYTES {
            return Err(too_long(&field, key));
        }
        if value.len() > MAX_RUNNER_TEXT_BYTES {
            return Err(too_long(&field, value));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_over_the_count_are_dropped_and_the_message_says_so() {
        let many = (0..MAX_OUTPUTS + 5).map(|i| (format!("k{i:04}"), i.to_string()));
        let (kept, message) = outputs(many, "boom".to_owned());
        assert_eq!(kept.len(), MAX_OUTPUTS);
        assert_eq!(
            message,
            "boom; 5 of the job's 105 outputs were dropped: a job keeps at most 100 outputs and 64 KiB of output \
             names and values"
        );
    }

    #[test]
    fn outputs_over_the_byte_budget_are_cut_then_dropped() {
        let large = (0..10).map(|i| (format!("k{i}"), "v".repeat(MAX_OUTPUT_VALUE_BYTES + 10)));
        let (kept, message) = outputs(large, String::new());
        assert!(kept.values().all(|v| v.len() <= MAX_OUTPUT_VALUE_BYTES && v.contains("[truncated")));
        let each = truncate_owned("v".repeat(MAX_OUTPUT_VALUE_BYTES + 10), MAX_OUTPUT_VALUE_BYTES).len() + 2;
        let fit = MAX_OUTPUTS_BYTES / each;
        assert_eq!(kept.len(), fit);
        assert!(message.starts_with(&format!("{} of the job's 10 outputs were dropped", 10 - fit)), "{message}");
    }

    #[test]
    fn long_runner_fields_are_refused_with_the_limit() {
        let labels: BTreeMap<String, String> = [("os".to_owned(), "x".repeat(300))].into_iter().collect();
        let err = check_runner("hello", "r", "1", &labels).expect_err("too long").to_string();
        assert!(err.contains("256-byte limit"), "{err}");
        let labels: BTreeMap<String, String> = (0..65).map(|i| (format!("l{i}"), String::new())).collect();
        let err = check_runner("hello", "r", "1", &labels).expect_err("too many").to_string();
        assert!(err.contains("limit of 64 labels"), "{err}");
        assert!(check_runner("hello", "r", "1", &BTreeMap::new()).is_ok());
    }
}
