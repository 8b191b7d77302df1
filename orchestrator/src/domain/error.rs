//! The orchestrator's domain errors. `api::status` maps each variant to a gRPC status.

use rivet_core::{Assignment, Diagnostic, InputErrors, JobState};
use uuid::Uuid;

use crate::domain::access::Unauthenticated;
use crate::domain::coord::CoordError;
use crate::domain::store::StoreError;
use crate::domain::tokens::Role;

/// What can go wrong in the orchestrator's domain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A pipeline, job or runner that does not exist.
    #[error("{what} `{id}` not found")]
    NotFound {
        /// What was looked for: "pipeline", "job".
        what: &'static str,
        /// The id or name given.
        id: String,
    },
    /// Something that exists already and may not be replaced, e.g. a plugin version
    /// published again with other content.
    #[error("{0}")]
    AlreadyExists(String),
    /// A pipeline script that does not validate.
    #[error("invalid pipeline: {} problem(s)", .0.len())]
    InvalidPipeline(Vec<Diagnostic>),
    /// Launch inputs that do not fit the pipeline's declarations.
    #[error("invalid inputs: {0}")]
    InvalidInputs(InputErrors),
    /// A request field that is malformed.
    #[error("{field}: {message}")]
    InvalidArgument {
        /// The request field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Several malformed request fields, each with what is wrong with it: validation that
    /// reports every problem at once (e.g. `CreateSchedule`).
    #[error("invalid request: {}", .0.iter().map(|(field, message)| format!("{field}: {message}")).collect::<Vec<_>>().join("; "))]
    InvalidFields(Vec<(String, String)>),
    /// An operation that needs a job which has not ended yet.
    #[error("job {0} has already ended: it is {1}")]
    AlreadyEnded(Uuid, JobState),
    /// A runner message under an assignment that is no longer the job's current one.
    #[error("assignment {0} is no longer current")]
    StaleAssignment(Assignment),
    /// A runner that does not speak our protocol version.
    #[error("no common protocol version: the runner speaks {offered:?}, this orchestrator {supported}")]
    ProtocolMismatch {
        /// The versions the runner offered.
        offered: Vec<u32>,
        /// The version the orchestrator speaks.
        supported: u32,
    },
    /// A call without a valid credential: none, a malformed one, an unknown token, or a
    /// revoked or expired one.
    #[error(transparent)]
    Unauthenticated(#[from] Unauthenticated),
    /// A caller whose role is below the one the method needs.
    #[error("{method} needs the {needed} role; {caller} has the {has} role")]
    PermissionDenied {
        /// The gRPC method path, e.g. `/rivet.v1.JobService/LaunchJob`.
        method: String,
        /// The role the method needs.
        needed: Role,
        /// Who called: "API token <id>", "a bootstrap token".
        caller: String,
        /// The caller's role.
        has: Role,
    },
    /// A method with no entry in the role table: refused, whoever calls.
    #[error("{0} has no entry in the role table, so it is refused")]
    Unlisted(String),
    /// A runner without a valid registration token or credential: missing, malformed,
    /// unknown, expired or revoked.
    #[error("{0}")]
    RunnerUnauthenticated(String),
    /// A valid credential asking for something it was not granted, e.g. a runner claiming
    /// another runner's id or labels its registration did not grant.
    #[error("{0}")]
    RunnerRefused(String),
    /// A secret cannot be stored or sent as things are: no secrets key is configured, or
    /// its value would travel over plain text off loopback. The message names the setting.
    #[error("{0}")]
    SecretsRefused(String),
    /// A stored collection is at its cap (e.g. plugin versions); the message names it.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The orchestrator is shutting down.
    #[error("the orchestrator is shutting down")]
    ShuttingDown,
    /// A pipeline script could not be evaluated: a limit killed it, the evaluation queue
    /// is full, or a worker failed.
    #[error(transparent)]
    Evaluation(#[from] rivet_evaluator::Error),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Redis (or the in-memory coordinator) failed.
    #[error(transparent)]
    Coord(#[from] CoordError),
    /// A bug or an unexpected state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A malformed request field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Error {
        Error::InvalidArgument { field: field.to_owned(), message: message.into() }
    }
}

/// Shorthand for domain results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
