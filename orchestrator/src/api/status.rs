//! Maps domain errors to gRPC statuses, exhaustively, so every new variant forces a
//! decision. Unexpected errors are logged in full with an id and returned as `internal`
//! without internals.

use rivet_evaluator::Error as EvaluationError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};
use uuid::Uuid;

use crate::domain::coord::CoordError;
use crate::domain::error::Error;
use crate::domain::store::StoreError;

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        match err {
            Error::NotFound { .. } => Status::not_found(err.to_string()),
            Error::AlreadyExists(_) => Status::already_exists(err.to_string()),
            Error::InvalidPipeline(diagnostics) => {
                let violations: Vec<FieldViolation> = diagnostics
                    .iter()
                    .map(|d| FieldViolation::new(format!("{}:{}:{}", d.file, d.line, d.field), d.message.clone()))
                    .collect();
                let summary: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("invalid pipeline:\n{}", summary.join("\n")),
                    ErrorDetails::with_bad_request(violations),
                )
            }
            Error::InvalidInputs(errors) => {
                let violations: Vec<FieldViolation> = errors
                    .0
                    .iter()
                    .map(|e| FieldViolation::new(format!("inputs.{}", e.input), e.message.clone()))
                    .collect();
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("invalid inputs: {errors}"),
                    ErrorDetails::with_bad_request(violations),
                )
            }
            Error::InvalidArgument { field, message } => Status::with_error_details(
                Code::InvalidArgument,
                format!("{field}: {message}"),
                ErrorDetails::with_bad_request(vec![FieldViolation::new(field, message)]),
            ),
            Error::InvalidFields(ref problems) => Status::with_error_details(
                Code::InvalidArgument,
                err.to_string(),
                ErrorDetails::with_bad_request(
                    problems.iter().map(|(field, message)| FieldViolation::new(field, message)).collect::<Vec<_>>(),
                ),
            ),
            Error::AlreadyEnded(..) | Error::SecretsRefused(_) => Status::failed_precondition(err.to_string()),
            Error::StaleAssignment(_) => Status::aborted(err.to_string()),
            Error::ProtocolMismatch { .. } => Status::failed_precondition(err.to_string()),
            Error::Unauthenticated(_) | Error::RunnerUnauthenticated(_) => Status::unauthenticated(err.to_string()),
            Error::PermissionDenied { .. } | Error::Unlisted(_) | Error::RunnerRefused(_) => {
                Status::permission_denied(err.to_string())
            }
            Error::ShuttingDown => Status::unavailable(err.to_string()),
            Error::ResourceExhausted(_) => Status::resource_exhausted(err.to_string()),
            Error::Evaluation(ref evaluation) => match evaluation {
                // A limit stopped the script: the script is at fault, and the message says
                // which limit, as a violation of the `source` field. (The orchestrator
                // reports these as diagnostics of the script; this is the fallback.)
                EvaluationError::TimeBudget { .. }
                | EvaluationError::CpuLimit { .. }
                | EvaluationError::MemoryLimit { .. }
                | EvaluationError::ResponseTooLarge { .. }
                | EvaluationError::SourceTooLarge { .. } => Status::with_error_details(
                    Code::InvalidArgument,
                    format!("invalid pipeline: {evaluation}"),
                    ErrorDetails::with_bad_request(vec![FieldViolation::new("source", evaluation.to_string())]),
                ),
                EvaluationError::QueueFull { .. } => Status::resource_exhausted(evaluation.to_string()),
                EvaluationError::Spawn { .. } => {
                    internal(&err, Code::Unavailable, "pipeline evaluation is unavailable; retry shortly")
                }
                EvaluationError::Crashed(_) => internal(&err, Code::Internal, "internal error"),
            },
            Error::Store(StoreError::Unavailable(_)) | Error::Coord(CoordError::Unavailable(_)) => {
                internal(&err, Code::Unavailable, "a backing service is unavailable; retry shortly")
            }
            Error::Store(StoreError::Corrupt(_)) | Error::Internal(_) => {
                internal(&err, Code::Internal, "internal error")
            }
        }
    }
}

fn internal(err: &Error, code: Code, public: &str) -> Status {
    let id = Uuid::new_v4();
    tracing::error!(error = %err, error_id = %id, "request failed");
    Status::new(code, format!("{public} (error id {id})"))
}
