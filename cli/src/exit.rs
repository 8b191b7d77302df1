//! The exit codes of `rivet`, documented in one place.
//!
//! Scripts can tell a job that failed (4, 5, 6) from a refused request (3, 7, 8, 10) and
//! from a server that could not be reached (9).

/// Everything worked; for commands that follow a job, the job succeeded.
pub const OK: u8 = 0;
/// An unexpected failure: I/O, the network, a bug, or an error the server did not explain.
pub const FAILURE: u8 = 1;
/// The command line was wrong (clap's own code for usage errors).
pub const USAGE: u8 = 2;
/// A pipeline script is invalid (`pipeline check`, `pipeline create`, `run`).
pub const INVALID_PIPELINE: u8 = 3;
/// The followed job failed: a stage failed, or its runner was lost.
pub const JOB_FAILED: u8 = 4;
/// The followed job was cancelled.
pub const JOB_CANCELLED: u8 = 5;
/// The followed job ran past its timeout.
pub const JOB_TIMED_OUT: u8 = 6;
/// A launch was refused because of its inputs: missing, mistyped or not allowed.
pub const INVALID_INPUT: u8 = 7;
/// The pipeline, job or version named does not exist (or a prefix matched nothing, or
/// more than one thing).
pub const NOT_FOUND: u8 = 8;
/// The server could not be reached, is too busy to take the request, or is shutting down.
pub const UNAVAILABLE: u8 = 9;
/// The server refused the credentials, or the request was not allowed.
pub const UNAUTHENTICATED: u8 = 10;
/// The request conflicts with the current state, e.g. cancelling a job that has ended.
pub const CONFLICT: u8 = 11;
/// Interrupted by Ctrl-C (128 + SIGINT, as shells report it).
pub const INTERRUPTED: u8 = 130;

/// The exit codes as `rivet --help` lists them.
pub const HELP: &str = "\
Exit status:
  0    success (for commands that follow a job: the job succeeded)
  1    unexpected failure
  2    usage error, or a refused confirmation without a terminal
  3    invalid pipeline script
  4    the followed job failed (or its runner was lost)
  5    the followed job was cancelled
  6    the followed job timed out
  7    invalid or missing inputs
  8    no such pipeline, job or version (or an ambiguous id prefix)
  9    the server cannot be reached, is busy, or is shutting down
  10   the credentials were refused
  11   conflict with the current state (e.g. cancelling a job that has ended)
  130  interrupted (Ctrl-C)";

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails when a code is added above but not to [`HELP`].
    #[test]
    fn help_lists_every_code() {
        for code in [
            OK,
            FAILURE,
            USAGE,
            INVALID_PIPELINE,
            JOB_FAILED,
            JOB_CANCELLED,
            JOB_TIMED_OUT,
            INVALID_INPUT,
            NOT_FOUND,
            UNAVAILABLE,
            UNAUTHENTICATED,
            CONFLICT,
            INTERRUPTED,
        ] {
            assert!(
                HELP.lines().any(|line| line.trim_start().starts_with(&format!("{code} "))),
                "{code} is not in HELP"
            );
        }
    }
}
