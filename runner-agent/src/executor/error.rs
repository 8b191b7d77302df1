//! What can go wrong while a job runs, each with the failure reason it is reported under.

use std::path::PathBuf;

use rivet_core::FailureReason;

/// An error of the executor or of a runtime module. Runtime modules raise it into Lua as an
/// external error, so the failure reason survives the trip through the script.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image is not on the host and pulling it failed.
    #[error("image `{image}` could not be pulled: {message}")]
    ImagePull {
        /// The image reference, as the pipeline wrote it.
        image: String,
        /// What Podman said.
        message: String,
    },
    /// Podman refused to start the process, e.g. because the program does not exist.
    #[error("cannot start `{cmd}` in image `{image}`: {message}")]
    Start {
        /// The program.
        cmd: String,
        /// The image it was to run in.
        image: String,
        /// What Podman said.
        message: String,
    },
    /// The process's container was killed for using more memory than its limit.
    #[error("`{cmd}` was killed for running out of memory (container limit {limit_mib} MiB)")]
    Oom {
        /// The program.
        cmd: String,
        /// The container's memory limit.
        limit_mib: u64,
    },
    /// The job was cancelled or ran out of time while the script waited on the host.
    #[error("the job is stopping: {0}")]
    Stopped(FailureReason),
    /// A call to the Podman API failed.
    #[error("podman failed to {action}: {source}")]
    Podman {
        /// What the executor was doing.
        action: &'static str,
        /// Podman's error.
        source: podman_api::Error,
    },
    /// `podman system service` could not be started.
    #[error("cannot start `podman system service` (is podman installed?): {0}")]
    PodmanService(std::io::Error),
    /// The job's workspace could not be created or removed.
    #[error("workspace {path}: {source}")]
    Workspace {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The job's thread could not be started or died.
    #[error("job thread: {0}")]
    Thread(String),
}

impl Error {
    /// The failure reason this error is reported under.
    pub fn reason(&self) -> FailureReason {
        match self {
            Error::ImagePull { .. } => FailureReason::ImagePull,
            Error::Start { .. } => FailureReason::ScriptError,
            Error::Oom { .. } => FailureReason::Oom,
            Error::Stopped(reason) => *reason,
            Error::Podman { .. } | Error::PodmanService(_) | Error::Workspace { .. } | Error::Thread(_) => {
                FailureReason::Internal
            }
        }
    }

    pub(crate) fn podman(action: &'static str) -> impl FnOnce(podman_api::Error) -> Error {
        move |source| Error::Podman { action, source }
    }
}

impl From<Error> for mlua::Error {
    fn from(err: Error) -> Self {
        mlua::Error::external(err)
    }
}

/// The message Podman put in an error response, without the client's decoration.
pub(crate) fn podman_message(err: &podman_api::Error) -> String {
    match err {
        podman_api::Error::Fault { message, .. }
        | podman_api::Error::Error(podman_api::conn::Error::Fault { message, .. }) => message.trim().to_owned(),
        other => other.to_string(),
    }
}
