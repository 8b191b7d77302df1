//! Conversions between the wire types and `rivet-core`'s domain types, shared by the
//! orchestrator and the runner. A missing or malformed field becomes a [`ConvertError`]
//! naming it; each side maps that to its own error once. The runner protocol's envelopes
//! are converted in `runner`.

mod runner;

use chrono::{DateTime, TimeZone, Utc};
use prost_types::Timestamp;
use rivet_core::{
    Assignment, Diagnostic, FailureReason, InputSpec, InputType, InputValue, JobOrigin, JobState, LogLevel, LogLine,
    PipelineDefinition, StageState,
};
use uuid::Uuid;

use crate::v1 as pb;

/// A field of a message that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConvertError {
    /// The field's path.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConvertError {
    /// A problem with `field`.
    pub fn new(field: &str, message: impl Into<String>) -> ConvertError {
        ConvertError { field: field.to_owned(), message: message.into() }
    }
}

/// Shorthand for conversion results.
pub type ConvertResult<T> = Result<T, ConvertError>;

/// A timestamp on the wire.
pub fn time_to_proto(time: DateTime<Utc>) -> Timestamp {
    Timestamp { seconds: time.timestamp(), nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0) }
}

/// A timestamp from the wire; now when absent or out of range.
pub fn time_from_proto(time: Option<&Timestamp>) -> DateTime<Utc> {
    time.and_then(|t| Utc.timestamp_opt(t.seconds, u32::try_from(t.nanos).unwrap_or(0)).single())
        .unwrap_or_else(Utc::now)
}

/// Parses a UUID field.
pub fn uuid(text: &str, field: &str) -> ConvertResult<Uuid> {
    if text.is_empty() {
        return Err(ConvertError::new(field, "is required"));
    }
    Uuid::parse_str(text).map_err(|err| ConvertError::new(field, format!("`{text}` is not a valid id: {err}")))
}

/// An assignment on the wire.
pub fn assignment_to_proto(assignment: Assignment) -> pb::Assignment {
    pb::Assignment { job_id: assignment.job_id.to_string(), attempt: assignment.attempt, epoch: assignment.epoch }
}

/// An assignment from the wire; `field` names it in errors.
pub fn assignment_from_proto(assignment: Option<&pb::Assignment>, field: &str) -> ConvertResult<Assignment> {
    let assignment = assignment.ok_or_else(|| ConvertError::new(field, "is required"))?;
    Ok(Assignment {
        job_id: uuid(&assignment.job_id, &format!("{field}.job_id"))?,
        attempt: assignment.attempt,
        epoch: assignment.epoch,
    })
}

/// A job state on the wire.
pub fn job_state_to_proto(state: JobState) -> i32 {
    (match state {
        JobState::Queued => pb::JobState::Queued,
        JobState::Assigned => pb::JobState::Assigned,
        JobState::Running => pb::JobState::Running,
        JobState::Succeeded => pb::JobState::Succeeded,
        JobState::Failed => pb::JobState::Failed,
        JobState::Cancelled => pb::JobState::Cancelled,
        JobState::TimedOut => pb::JobState::TimedOut,
        JobState::Lost => pb::JobState::Lost,
    }) as i32
}

/// A job state from the wire.
pub fn job_state_from_proto(value: i32) -> ConvertResult<JobState> {
    let state =
        pb::JobState::try_from(value).map_err(|_| ConvertError::new("state", format!("unknown job state {value}")))?;
    Ok(match state {
        pb::JobState::Unspecified => return Err(ConvertError::new("state", "is required")),
        pb::JobState::Queued => JobState::Queued,
        pb::JobState::Assigned => JobState::Assigned,
        pb::JobState::Running => JobState::Running,
        pb::JobState::Succeeded => JobState::Succeeded,
        pb::JobState::Failed => JobState::Failed,
        pb::JobState::Cancelled => JobState::Cancelled,
        pb::JobState::TimedOut => JobState::TimedOut,
        pb::JobState::Lost => JobState::Lost,
    })
}

/// A stage state on the wire.
pub fn stage_state_to_proto(state: StageState) -> i32 {
    (match state {
        StageState::Pending => pb::StageState::Pending,
        StageState::Running => pb::StageState::Running,
        StageState::Succeeded => pb::StageState::Succeeded,
        StageState::Failed => pb::StageState::Failed,
        StageState::Skipped => pb::StageState::Skipped,
        StageState::Cancelled => pb::StageState::Cancelled,
        StageState::TimedOut => pb::StageState::TimedOut,
    }) as i32
}

/// A stage state from the wire.
pub fn stage_state_from_proto(value: i32) -> ConvertResult<StageState> {
    let state = pb::StageState::try_from(value)
        .map_err(|_| ConvertError::new("state", format!("unknown stage state {value}")))?;
    Ok(match state {
        pb::StageState::Unspecified => return Err(ConvertError::new("state", "is required")),
        pb::StageState::Pending => StageState::Pending,
        pb::StageState::Running => StageState::Running,
        pb::StageState::Succeeded => StageState::Succeeded,
        pb::StageState::Failed => StageState::Failed,
        pb::StageState::Skipped => StageState::Skipped,
        pb::StageState::Cancelled => StageState::Cancelled,
        pb::StageState::TimedOut => StageState::TimedOut,
    })
}

/// A failure reason on the wire (unspecified for none).
pub fn failure_reason_to_proto(reason: Option<FailureReason>) -> i32 {
    (match reason {
        None => pb::FailureReason::Unspecified,
        Some(FailureReason::ExitCode) => pb::FailureReason::ExitCode,
        Some(FailureReason::ScriptError) => pb::FailureReason::ScriptError,
        Some(FailureReason::Timeout) => pb::FailureReason::Timeout,
        Some(FailureReason::Cancelled) => pb::FailureReason::Cancelled,
        Some(FailureReason::RunnerLost) => pb::FailureReason::RunnerLost,
        Some(FailureReason::ImagePull) => pb::FailureReason::ImagePull,
        Some(FailureReason::Oom) => pb::FailureReason::Oom,
        Some(FailureReason::InvalidInput) => pb::FailureReason::InvalidInput,
        Some(FailureReason::Internal) => pb::FailureReason::Internal,
    }) as i32
}

/// A failure reason from the wire; unknown values read as none.
pub fn failure_reason_from_proto(value: i32) -> Option<FailureReason> {
    match pb::FailureReason::try_from(value).ok()? {
        pb::FailureReason::Unspecified => None,
        pb::FailureReason::ExitCode => Some(FailureReason::ExitCode),
        pb::FailureReason::ScriptError => Some(FailureReason::ScriptError),
        pb::FailureReason::Timeout => Some(FailureReason::Timeout),
        pb::FailureReason::Cancelled => Some(FailureReason::Cancelled),
        pb::FailureReason::RunnerLost => Some(FailureReason::RunnerLost),
        pb::FailureReason::ImagePull => Some(FailureReason::ImagePull),
        pb::FailureReason::Oom => Some(FailureReason::Oom),
        pb::FailureReason::InvalidInput => Some(FailureReason::InvalidInput),
        pb::FailureReason::Internal => Some(FailureReason::Internal),
    }
}

/// A log level on the wire.
pub fn log_level_to_proto(level: LogLevel) -> i32 {
    (match level {
        LogLevel::Debug => pb::LogLevel::Debug,
        LogLevel::Info => pb::LogLevel::Info,
        LogLevel::Warning => pb::LogLevel::Warning,
        LogLevel::Error => pb::LogLevel::Error,
    }) as i32
}

/// A log level from the wire; unknown values read as info.
pub fn log_level_from_proto(value: i32) -> LogLevel {
    match pb::LogLevel::try_from(value) {
        Ok(pb::LogLevel::Debug) => LogLevel::Debug,
        Ok(pb::LogLevel::Warning) => LogLevel::Warning,
        Ok(pb::LogLevel::Error) => LogLevel::Error,
        _ => LogLevel::Info,
    }
}

/// A log line on the wire.
pub fn log_line_to_proto(line: &LogLine) -> pb::LogLine {
    pb::LogLine {
        sequence: line.sequence,
        time: Some(time_to_proto(line.time)),
        level: log_level_to_proto(line.level),
        stage: line.stage.clone(),
        text: line.text.clone(),
        attempt: line.attempt,
    }
}

/// A log line from a runner, under the attempt of its batch.
pub fn log_line_from_proto(line: pb::LogLine, attempt: u32) -> ConvertResult<LogLine> {
    if line.sequence == 0 {
        return Err(ConvertError::new("log_batch.lines.sequence", "sequences start at 1"));
    }
    Ok(LogLine {
        sequence: line.sequence,
        time: time_from_proto(line.time.as_ref()),
        level: log_level_from_proto(line.level),
        stage: line.stage,
        text: line.text,
        attempt,
    })
}

/// A typed input value on the wire.
pub fn input_value_to_proto(value: &InputValue) -> pb::InputValue {
    let kind = match value {
        InputValue::String(text) => pb::input_value::Kind::StringValue(text.clone()),
        InputValue::Number(number) => pb::input_value::Kind::NumberValue(*number),
        InputValue::Bool(flag) => pb::input_value::Kind::BoolValue(*flag),
    };
    pb::InputValue { kind: Some(kind) }
}

/// A typed input value from the wire.
pub fn input_value_from_proto(value: &pb::InputValue) -> Option<InputValue> {
    Some(match value.kind.as_ref()? {
        pb::input_value::Kind::StringValue(text) => InputValue::String(text.clone()),
        pb::input_value::Kind::NumberValue(number) => InputValue::Number(*number),
        pb::input_value::Kind::BoolValue(flag) => InputValue::Bool(*flag),
    })
}

fn input_type_to_proto(input_type: InputType) -> i32 {
    (match input_type {
        InputType::String => pb::InputType::String,
        InputType::Number => pb::InputType::Number,
        InputType::Bool => pb::InputType::Bool,
    }) as i32
}

fn input_spec_to_proto(input: &InputSpec) -> pb::InputSpec {
    pb::InputSpec {
        name: input.name.clone(),
        r#type: input_type_to_proto(input.input_type),
        description: input.description.clone(),
        default_value: input.default.as_ref().map(input_value_to_proto),
        options: input.options.iter().map(input_value_to_proto).collect(),
        required: input.required,
    }
}

/// A pipeline definition on the wire.
pub fn definition_to_proto(definition: &PipelineDefinition) -> pb::PipelineDefinition {
    pb::PipelineDefinition {
        name: definition.name.clone(),
        description: definition.description.clone(),
        inputs: definition.inputs.iter().map(input_spec_to_proto).collect(),
        runner_tags: definition
            .runner
            .iter()
            .map(|tag| pb::Tag { key: tag.key.clone(), value: tag.value.clone() })
            .collect(),
        plugins: definition.plugins.clone(),
        secrets: definition.secrets.clone(),
        http: definition
            .http
            .as_ref()
            .map(|scope| pb::HttpScope { hosts: scope.hosts.clone(), methods: scope.methods.clone() }),
        stages: definition
            .stages
            .iter()
            .map(|stage| pb::StageSpec {
                name: stage.name.clone(),
                container: stage.container.clone().unwrap_or_default(),
                has_condition: stage.has_condition,
                timeout_seconds: stage.timeout_secs.unwrap_or(0),
                network: match stage.network {
                    Some(rivet_core::model::StageNetwork::None) => "none".to_owned(),
                    Some(rivet_core::model::StageNetwork::Default) => "default".to_owned(),
                    None => String::new(),
                },
            })
            .collect(),
    }
}

/// A diagnostic on the wire.
pub fn diagnostic_to_proto(diagnostic: &Diagnostic) -> pb::Diagnostic {
    pb::Diagnostic {
        file: diagnostic.file.clone(),
        line: diagnostic.line,
        field: diagnostic.field.clone(),
        message: diagnostic.message.clone(),
    }
}

/// What started a job, on the wire.
pub fn origin_to_proto(origin: &JobOrigin) -> pb::JobOrigin {
    use pb::job_origin::Kind;
    let kind = match origin {
        JobOrigin::Api { caller } => Kind::Api(pb::job_origin::Api { caller: caller.clone().unwrap_or_default() }),
        JobOrigin::Trigger { trigger_id, delivery_id, event, sha, git_ref } => Kind::Trigger(pb::job_origin::Trigger {
            trigger_id: trigger_id.to_string(),
            delivery_id: delivery_id.clone(),
            event: event.clone(),
            sha: sha.clone(),
            r#ref: git_ref.clone(),
        }),
        JobOrigin::Schedule { schedule_id, due } => Kind::Schedule(pb::job_origin::Schedule {
            schedule_id: schedule_id.to_string(),
            due_time: Some(time_to_proto(*due)),
        }),
        JobOrigin::Rerun { of } => Kind::Rerun(pb::job_origin::Rerun { job_id: of.to_string() }),
    };
    pb::JobOrigin { kind: Some(kind) }
}

/// What started a job, from the wire; an unset or malformed origin reads as an API
/// launch (it is informational: nothing is refused for it).
pub fn origin_from_proto(origin: Option<&pb::JobOrigin>) -> JobOrigin {
    use pb::job_origin::Kind;
    let api = JobOrigin::Api { caller: None };
    match origin.and_then(|origin| origin.kind.as_ref()) {
        None => api,
        Some(Kind::Api(call)) => JobOrigin::Api { caller: (!call.caller.is_empty()).then(|| call.caller.clone()) },
        Some(Kind::Trigger(trigger)) => match Uuid::parse_str(&trigger.trigger_id) {
            Ok(trigger_id) => JobOrigin::Trigger {
                trigger_id,
                delivery_id: trigger.delivery_id.clone(),
                event: trigger.event.clone(),
                sha: trigger.sha.clone(),
                git_ref: trigger.r#ref.clone(),
            },
            Err(_) => api,
        },
        Some(Kind::Schedule(schedule)) => match Uuid::parse_str(&schedule.schedule_id) {
            Ok(schedule_id) => JobOrigin::Schedule { schedule_id, due: time_from_proto(schedule.due_time.as_ref()) },
            Err(_) => api,
        },
        Some(Kind::Rerun(rerun)) => match Uuid::parse_str(&rerun.job_id) {
            Ok(of) => JobOrigin::Rerun { of },
            Err(_) => api,
        },
    }
}
