//! Errors a user sees: what went wrong, the details one per line, and what to do next.
//!
//! Every gRPC status is turned into an [`Error`] here, once, with the exit code from
//! [`crate::exit`] and a hint that names the command or setting that helps.

use std::fmt;

use tonic::Code;
use tonic_types::StatusExt;

use crate::exit;

/// An error with an exit code and advice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The exit code `rivet` ends with.
    pub code: u8,
    /// What went wrong, as a lowercase fragment.
    pub message: String,
    /// One problem per line, e.g. each invalid input.
    pub details: Vec<String>,
    /// What to do next.
    pub hint: Option<String>,
}

impl Error {
    /// An error with `code` and `message`.
    pub fn new(code: u8, message: impl Into<String>) -> Error {
        Error { code, message: message.into(), details: Vec::new(), hint: None }
    }

    /// Adds what to do next.
    pub fn hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    /// Adds problems, one per line.
    pub fn details(mut self, details: Vec<String>) -> Error {
        self.details = details;
        self
    }

    /// The server at `server` cannot be reached; `cause` says how it failed.
    pub fn unreachable(server: &str, cause: &str) -> Error {
        Error::new(exit::UNAVAILABLE, format!("cannot reach the Rivet server at {server} ({cause})"))
            .hint("is it running? Start one with `rivet dev`, or set RIVET_SERVER (or --server) to where it runs")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for detail in &self.details {
            write!(f, "\n  {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// What a request was about, to phrase "not found" and its hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A pipeline.
    Pipeline,
    /// A job.
    Job,
    /// Anything else.
    Other,
}

/// Turns a status from the server at `server` into an error for the user.
pub fn from_status(status: &tonic::Status, server: &str, subject: Subject) -> Error {
    let message = status.message().trim();
    match status.code() {
        Code::Unavailable if is_transport_failure(status) => Error::unreachable(server, &transport_cause(status)),
        Code::Unavailable => Error::new(exit::UNAVAILABLE, format!("the Rivet server at {server} is unavailable: {message}"))
            .hint("retry in a moment; if it persists, check the server's logs"),
        Code::Unauthenticated => Error::new(exit::UNAUTHENTICATED, format!("the server refused the credentials: {message}"))
            .hint("set RIVET_TOKEN (or --token, or `token` in the config file) to a valid API token; `rivet config show` shows what is in use"),
        Code::PermissionDenied => Error::new(exit::UNAUTHENTICATED, format!("not allowed: {message}"))
            .hint("use a token with the needed role (RIVET_TOKEN or --token)"),
        Code::NotFound => {
            let error = Error::new(exit::NOT_FOUND, message.to_owned());
            match subject {
                Subject::Pipeline => error.hint("`rivet pipeline list` shows the pipelines"),
                Subject::Job => error.hint("`rivet job list` shows the jobs"),
                Subject::Other => error,
            }
        }
        Code::InvalidArgument => invalid_argument(status),
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => Error::new(exit::CONFLICT, message.to_owned()),
        Code::DeadlineExceeded => Error::new(exit::UNAVAILABLE, format!("the server did not answer in time: {message}")),
        Code::ResourceExhausted => Error::new(exit::UNAVAILABLE, format!("the Rivet server at {server} is busy: {message}"))
            .hint("retry in a moment"),
        Code::Cancelled if message.is_empty() => Error::new(exit::FAILURE, "the request was cancelled"),
        code => Error::new(exit::FAILURE, format!("the server failed ({}): {message}", code.description())),
    }
}

/// An `INVALID_ARGUMENT` status: one line per field violation. Violations about
/// `inputs.*` make it an input error, anything else an invalid pipeline or request.
fn invalid_argument(status: &tonic::Status) -> Error {
    let violations = status.get_details_bad_request().map(|request| request.field_violations).unwrap_or_default();
    if violations.is_empty() {
        return Error::new(exit::FAILURE, format!("the server refused the request: {}", status.message()));
    }
    let inputs = violations.iter().all(|violation| violation.field.starts_with("inputs."));
    let details: Vec<String> = violations.iter().map(|v| describe_violation(&v.field, &v.description)).collect();
    if inputs {
        let count = details.len();
        Error::new(exit::INVALID_INPUT, format!("the launch was refused: {count} invalid input{}", plural(count)))
            .details(details)
            .hint("give each with --input NAME=VALUE; `rivet pipeline show PIPELINE` lists the inputs")
    } else if status.message().starts_with("invalid pipeline") {
        let count = details.len();
        Error::new(exit::INVALID_PIPELINE, format!("the pipeline is invalid: {count} problem{}", plural(count)))
            .details(details)
            .hint("`rivet pipeline check FILE` reports the same problems without a server")
    } else {
        Error::new(exit::FAILURE, "the server refused the request").details(details)
    }
}

/// One violation as the user reads it. Pipeline violations are named `file:line:field`
/// by the server; they become `file:line: field: message` like `rivet pipeline check`.
fn describe_violation(field: &str, description: &str) -> String {
    if let Some(input) = field.strip_prefix("inputs.") {
        return format!("input `{input}`: {description}");
    }
    let mut parts = field.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(file), Some(line), Some(path)) if line.chars().all(|c| c.is_ascii_digit()) => {
            let place = if line == "0" { file.to_owned() } else { format!("{file}:{line}") };
            if path.is_empty() { format!("{place}: {description}") } else { format!("{place}: {path}: {description}") }
        }
        _ if field.is_empty() => description.to_owned(),
        _ => format!("{field}: {description}"),
    }
}

/// Whether an `UNAVAILABLE` status came from the transport (no connection) rather than
/// from the server (shutting down, a backend down).
fn is_transport_failure(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
        || status.message().contains("transport error")
        || status.message().contains("tcp connect error")
        || status.message().contains("Connection refused")
}

/// The deepest cause of a transport failure, e.g. "Connection refused (os error 111)".
fn transport_cause(status: &tonic::Status) -> String {
    let mut cause: &dyn std::error::Error = status;
    let mut text = status.message().to_owned();
    while let Some(source) = cause.source() {
        text = source.to_string();
        cause = source;
    }
    if text.is_empty() { "no connection".to_owned() } else { text }
}

/// Turns a transport error from connecting into an error for the user.
pub fn from_transport(err: &tonic::transport::Error, server: &str) -> Error {
    let mut cause: &dyn std::error::Error = err;
    let mut text = err.to_string();
    while let Some(source) = cause.source() {
        text = source.to_string();
        cause = source;
    }
    Error::unreachable(server, &text)
}

/// "s" unless `count` is 1.
pub fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use tonic_types::{ErrorDetails, FieldViolation};

    use super::*;

    fn check(status: tonic::Status, subject: Subject, expect: &str) {
        let error = from_status(&status, "http://127.0.0.1:7420", subject);
        assert_eq!(format!("[{}] {error}", error.code), expect);
    }

    #[test]
    fn invalid_inputs_are_listed_one_per_line() {
        let status = tonic::Status::with_error_details(
            Code::InvalidArgument,
            "invalid inputs: …",
            ErrorDetails::with_bad_request(vec![
                FieldViolation::new("inputs.count", "`x` is not a number"),
                FieldViolation::new("inputs.who", "is required: give a string value"),
            ]),
        );
        check(
            status,
            Subject::Job,
            "[7] the launch was refused: 2 invalid inputs\n  input `count`: `x` is not a number\n  input `who`: is required: \
             give a string value\nhint: give each with --input NAME=VALUE; `rivet pipeline show PIPELINE` lists the inputs",
        );
    }

    #[test]
    fn pipeline_diagnostics_read_like_pipeline_check() {
        let status = tonic::Status::with_error_details(
            Code::InvalidArgument,
            "invalid pipeline:\n…",
            ErrorDetails::with_bad_request(vec![
                FieldViolation::new("p.lua:4:stages[1].name", "is required"),
                FieldViolation::new("p.lua:0:", "returns nothing"),
            ]),
        );
        check(
            status,
            Subject::Pipeline,
            "[3] the pipeline is invalid: 2 problems\n  p.lua:4: stages[1].name: is required\n  p.lua: returns nothing\n\
             hint: `rivet pipeline check FILE` reports the same problems without a server",
        );
    }

    #[test]
    fn not_found_suggests_the_list_command() {
        check(
            tonic::Status::not_found("no pipeline named `x`"),
            Subject::Pipeline,
            "[8] no pipeline named `x`\nhint: `rivet pipeline list` shows the pipelines",
        );
        check(
            tonic::Status::not_found("no job 123"),
            Subject::Job,
            "[8] no job 123\nhint: `rivet job list` shows the jobs",
        );
    }

    #[test]
    fn unauthenticated_names_the_token_setting() {
        let error = from_status(&tonic::Status::unauthenticated("invalid API token"), "x", Subject::Other);
        assert_eq!(error.code, exit::UNAUTHENTICATED);
        assert!(error.to_string().contains("set RIVET_TOKEN"), "{error}");
    }

    #[test]
    fn a_server_shutting_down_is_not_a_connection_failure() {
        let error = from_status(&tonic::Status::unavailable("shutting down"), "http://h:1", Subject::Other);
        assert_eq!(error.message, "the Rivet server at http://h:1 is unavailable: shutting down");
    }
}
