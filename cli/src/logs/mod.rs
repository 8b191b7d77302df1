//! Showing a job's log: lines coloured by level, a header when the stage changes, the
//! stage's outcome and duration when it ends, a spinner while the job waits for a runner,
//! and an exit code that reflects the job's result.
//!
//! Lines come from `LogService.StreamLogs`; stage outcomes and the job's state from
//! `JobService.WatchJob` (or `GetJob`). The two streams are not ordered with each other,
//! so headers follow the lines (a stage's header comes with its first line) and a stage's
//! footer is printed when the next stage's lines start or the job ends.

mod follow;
mod printer;
mod spinner;

use std::io::IsTerminal;

use rivet_proto::v1 as pb;

pub use self::follow::{Interrupt, show};
use crate::exit;

/// How the lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// For people: headers, footers, colours when stdout is a terminal.
    Text {
        /// Prefix each line with its time.
        timestamps: bool,
    },
    /// One JSON object per line, nothing else on stdout.
    JsonLines,
}

/// Whether to colour what goes to stdout: only on a terminal, and never with `NO_COLOR`.
pub fn stdout_colors() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty()) && std::io::stdout().is_terminal()
}

/// The exit code for a job in `state`.
pub fn exit_code(state: i32) -> u8 {
    match pb::JobState::try_from(state) {
        Ok(pb::JobState::Succeeded) => exit::OK,
        Ok(pb::JobState::Cancelled) => exit::JOB_CANCELLED,
        Ok(pb::JobState::TimedOut) => exit::JOB_TIMED_OUT,
        Ok(pb::JobState::Failed | pb::JobState::Lost) => exit::JOB_FAILED,
        // Still running (a log read without --follow): nothing failed.
        _ => exit::OK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_job() {
        assert_eq!(exit_code(pb::JobState::Succeeded as i32), exit::OK);
        assert_eq!(exit_code(pb::JobState::Failed as i32), exit::JOB_FAILED);
        assert_eq!(exit_code(pb::JobState::Lost as i32), exit::JOB_FAILED);
        assert_eq!(exit_code(pb::JobState::Cancelled as i32), exit::JOB_CANCELLED);
        assert_eq!(exit_code(pb::JobState::TimedOut as i32), exit::JOB_TIMED_OUT);
    }
}
