//! Job domain types shared by the orchestrator and the runner: states, failure reasons,
//! assignments and log lines. The lifecycle they describe is documented on [`JobState`].

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The runner protocol version this build speaks. Changes with every protocol change.
///
/// - 2: a runner registers once (`RegisterRunner`, with a registration token) and connects
///   with its own credential; the hello's `runner_id` must be the credential's, and its
///   labels ones the registration granted.
pub const PROTOCOL_VERSION: u32 = 2;

/// Declares a string-backed enum with `as_str`, `FromStr` and `Display`.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and displayed name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(text: &str) -> Result<Self, UnknownValue> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { kind: stringify!($name), value: text.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A stored name that matches no value of its enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownValue {
    /// The enum's name.
    pub kind: &'static str,
    /// The name that was not recognised.
    pub value: String,
}

string_enum! {
    /// The state of a job: `queued → assigned → running → succeeded | failed | cancelled |
    /// timed_out | lost`. A job whose runner is lost goes back to `queued` under a new
    /// attempt while attempts remain, and to `lost` after that.
    JobState {
        /// Waiting for a runner.
        Queued = "queued",
        /// Handed to a runner that has not started it yet.
        Assigned = "assigned",
        /// Running.
        Running = "running",
        /// Every stage succeeded or was skipped.
        Succeeded = "succeeded",
        /// A stage failed.
        Failed = "failed",
        /// Cancelled by a user.
        Cancelled = "cancelled",
        /// Ran past its timeout.
        TimedOut = "timed_out",
        /// The runner vanished and no attempts were left.
        Lost = "lost",
    }
}

impl JobState {
    /// Whether the job has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::TimedOut | JobState::Lost
        )
    }

    /// Whether a runner holds the job.
    pub fn is_active(self) -> bool {
        matches!(self, JobState::Assigned | JobState::Running)
    }
}

string_enum! {
    /// The state of one stage of a job.
    StageState {
        /// Not started.
        Pending = "pending",
        /// Running.
        Running = "running",
        /// Finished successfully.
        Succeeded = "succeeded",
        /// Failed.
        Failed = "failed",
        /// Its condition said no.
        Skipped = "skipped",
        /// Stopped by a cancel.
        Cancelled = "cancelled",
        /// Ran past its timeout.
        TimedOut = "timed_out",
    }
}

string_enum! {
    /// Why a job or stage failed; shown to users and usable by retry policies.
    FailureReason {
        /// A process exited non-zero and the script did not handle it.
        ExitCode = "exit_code",
        /// The Lua script raised an error.
        ScriptError = "script_error",
        /// A stage or the job ran past its timeout.
        Timeout = "timeout",
        /// A user cancelled the job.
        Cancelled = "cancelled",
        /// The runner stopped answering and no attempts were left.
        RunnerLost = "runner_lost",
        /// A container image could not be found or pulled.
        ImagePull = "image_pull",
        /// A container ran out of memory.
        Oom = "oom",
        /// The job's inputs were refused.
        InvalidInput = "invalid_input",
        /// Something failed inside Rivet.
        Internal = "internal",
    }
}

string_enum! {
    /// The level of a log line.
    LogLevel {
        /// Detail.
        Debug = "debug",
        /// Normal output.
        Info = "info",
        /// Something to look at.
        Warning = "warning",
        /// Something failed.
        Error = "error",
    }
}

/// One assignment of a job to a runner. Anything a runner sends under an assignment whose
/// epoch is no longer the job's current one is refused: this fences a job handed to
/// another runner from being finished twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Assignment {
    /// The job.
    pub job_id: Uuid,
    /// The attempt, from 1.
    pub attempt: u32,
    /// The lease epoch, raised on every assignment.
    pub epoch: u64,
}

impl fmt::Display for Assignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (attempt {}, epoch {})", self.job_id, self.attempt, self.epoch)
    }
}

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Sequence number within the job, from 1, without gaps across attempts.
    pub sequence: u64,
    /// When the runner produced it.
    pub time: DateTime<Utc>,
    /// Its level.
    pub level: LogLevel,
    /// The stage that produced it; empty for job-level lines.
    pub stage: String,
    /// The text, without a trailing newline.
    pub text: String,
    /// The attempt that produced it.
    pub attempt: u32,
}

/// What started a job: recorded at launch, shown by `rivet job show` and the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobOrigin {
    /// A `LaunchJob` call; `caller` names the token's holder when the call was
    /// authenticated.
    Api {
        /// Who called, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caller: Option<String>,
    },
    /// A forge's webhook delivery, through a trigger.
    Trigger {
        /// The trigger.
        trigger_id: Uuid,
        /// The forge's id of the delivery (redeliveries repeat it).
        delivery_id: String,
        /// The event: `push`, `tag` or `pull_request`.
        event: String,
        /// The commit it is about.
        sha: String,
        /// The full ref it is about.
        git_ref: String,
    },
    /// A cron schedule's due time.
    Schedule {
        /// The schedule.
        schedule_id: Uuid,
        /// The due time that fired.
        due: DateTime<Utc>,
    },
    /// `rivet job rerun`: the same pipeline version with the same inputs as `of`.
    Rerun {
        /// The job it reruns.
        of: Uuid,
    },
}

impl JobOrigin {
    /// The kind, as shown: `api`, `trigger`, `schedule` or `rerun`.
    pub fn kind(&self) -> &'static str {
        match self {
            JobOrigin::Api { .. } => "api",
            JobOrigin::Trigger { .. } => "trigger",
            JobOrigin::Schedule { .. } => "schedule",
            JobOrigin::Rerun { .. } => "rerun",
        }
    }
}
