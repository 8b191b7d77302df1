//! Why the pool could not evaluate a script. A script's own problems are not here: they
//! come back as [`rivet_core::LoadError`], as from an evaluation in-process.

use std::path::PathBuf;
use std::time::Duration;

use rivet_core::Diagnostic;

/// What stopped an evaluation in the pool. Every message names the limit that was hit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The worker did not answer within the time budget plus the grace, and was killed:
    /// the script was stuck where the sandbox's own deadline could not reach it.
    #[error("pipeline evaluation exceeded its {} time budget and was killed", seconds(*.budget))]
    TimeBudget {
        /// The time budget configured for one evaluation.
        budget: Duration,
    },
    /// The kernel stopped the worker at its CPU time limit (`RLIMIT_CPU`).
    #[error("pipeline evaluation exceeded its {} CPU time limit and was killed", seconds(*.limit))]
    CpuLimit {
        /// The CPU time allowed for one evaluation.
        limit: Duration,
    },
    /// The worker ran out of address space (`RLIMIT_AS`) outside Lua's own memory cap.
    #[error("pipeline evaluation exceeded its {} MiB memory limit and was killed", .limit / (1024 * 1024))]
    MemoryLimit {
        /// The address space a worker may use, in bytes.
        limit: u64,
    },
    /// The worker's answer is larger than the pool reads.
    #[error("the evaluated pipeline definition exceeds the {} MiB response limit", .limit / (1024 * 1024))]
    ResponseTooLarge {
        /// The largest response read, in bytes.
        limit: usize,
    },
    /// The script is larger than a request to a worker may carry.
    #[error("the pipeline source is {size} bytes, over the {} KiB the evaluation workers accept", .limit / 1024)]
    SourceTooLarge {
        /// The source's size, in bytes.
        size: usize,
        /// The largest source accepted, in bytes.
        limit: usize,
    },
    /// Every worker is busy and the wait queue is full.
    #[error(
        "too many pipelines are waiting to be evaluated: all {workers} evaluation workers are busy and the queue of {queue} is full; retry shortly"
    )]
    QueueFull {
        /// How many workers evaluate at once.
        workers: usize,
        /// How many evaluations may wait for one.
        queue: usize,
    },
    /// The worker program could not be started.
    #[error("cannot start the evaluation worker `{}`: {source}", .program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The worker died or answered nonsense for a reason no limit explains.
    #[error("the evaluation worker failed: {0}")]
    Crashed(String),
}

impl Error {
    /// Whether a limit on the evaluation stopped it: the script is at fault, not the server.
    pub fn is_limit(&self) -> bool {
        match self {
            Error::TimeBudget { .. }
            | Error::CpuLimit { .. }
            | Error::MemoryLimit { .. }
            | Error::ResponseTooLarge { .. }
            | Error::SourceTooLarge { .. } => true,
            Error::QueueFull { .. } | Error::Spawn { .. } | Error::Crashed(_) => false,
        }
    }

    /// A limit that stopped the script, as a problem of the script `file` (line 0: where
    /// it was stuck is unknown), reported beside any other diagnostic; `None` when the
    /// script is not at fault.
    pub fn as_diagnostic(&self, file: &str) -> Option<Diagnostic> {
        self.is_limit().then(|| Diagnostic {
            file: file.to_owned(),
            line: 0,
            field: String::new(),
            message: self.to_string(),
        })
    }
}

/// `2 s`, `1.5 s`, `250 ms`: how limits read in messages.
pub(crate) fn seconds(duration: Duration) -> String {
    if duration.subsec_millis() == 0 && duration.as_secs() > 0 {
        format!("{} s", duration.as_secs())
    } else if duration.as_millis() >= 1000 {
        format!("{:.1} s", duration.as_secs_f64())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_limit() {
        let budget = Error::TimeBudget { budget: Duration::from_secs(2) };
        assert_eq!(budget.to_string(), "pipeline evaluation exceeded its 2 s time budget and was killed");
        let memory = Error::MemoryLimit { limit: 320 * 1024 * 1024 };
        assert_eq!(memory.to_string(), "pipeline evaluation exceeded its 320 MiB memory limit and was killed");
        assert_eq!(seconds(Duration::from_millis(1_500)), "1.5 s");
        assert_eq!(seconds(Duration::from_millis(250)), "250 ms");
    }
}
