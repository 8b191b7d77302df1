//! Conversions between the wire types of `rivet-proto` and the domain types. A missing or
//! malformed required field becomes `Error::InvalidArgument` here, once.

use chrono::{DateTime, TimeZone, Utc};
use prost_types::Timestamp;
use rivet_core::{
    Assignment, Diagnostic, FailureReason, InputSpec, InputType, InputValue, JobState, LogLevel, LogLine,
    PipelineDefinition, StageState,
};
use rivet_proto::v1 as pb;
use uuid::Uuid;

use crate::domain::error::{Error, Result};
use crate::domain::store::{JobRecord, PipelineRecord, StageRecord, Transition};

/// A timestamp on the wire.
pub fn time_to_proto(time: DateTime<Utc>) -> Timestamp {
    Timestamp { seconds: time.timestamp(), nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0) }
}

/// A timestamp from the wire; now when absent or out of range.
pub fn time_from_proto(time: Option<&Timestamp>) -> DateTime<Utc> {
    time.and_then(|t| Utc.timestamp_opt(t.seconds, u32::try_from(t.nanos).unwrap_or(0)).single()).unwrap_or_else(Utc::now)
}

/// Parses a UUID field.
pub fn uuid(text: &str, field: &str) -> Result<Uuid> {
    if text.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    Uuid::parse_str(text).map_err(|err| Error::invalid(field, format!("`{text}` is not a valid id: {err}")))
}

/// An assignment on the wire.
pub fn assignment_to_proto(assignment: Assignment) -> pb::Assignment {
    pb::Assignment { job_id: assignment.job_id.to_string(), attempt: assignment.attempt, epoch: assignment.epoch }
}

/// An assignment from the wire; `field` names it in errors.
pub fn assignment_from_proto(assignment: Option<&pb::Assignment>, field: &str) -> Result<Assignment> {
    let assignment = assignment.ok_or_else(|| Error::invalid(field, "is required"))?;
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
pub fn job_state_from_proto(value: i32) -> Result<JobState> {
    let state = pb::JobState::try_from(value).map_err(|_| Error::invalid("state", format!("unknown job state {value}")))?;
    Ok(match state {
        pb::JobState::Unspecified => return Err(Error::invalid("state", "is required")),
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
pub fn stage_state_from_proto(value: i32) -> Result<StageState> {
    let state = pb::StageState::try_from(value).map_err(|_| Error::invalid("state", format!("unknown stage state {value}")))?;
    Ok(match state {
        pb::StageState::Unspecified => return Err(Error::invalid("state", "is required")),
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
pub fn log_line_from_proto(line: pb::LogLine, attempt: u32) -> Result<LogLine> {
    if line.sequence == 0 {
        return Err(Error::invalid("log_batch.lines.sequence", "sequences start at 1"));
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
        runner_tags: definition.runner.iter().map(|tag| pb::Tag { key: tag.key.clone(), value: tag.value.clone() }).collect(),
        plugins: definition.plugins.clone(),
        secrets: definition.secrets.clone(),
        stages: definition
            .stages
            .iter()
            .map(|stage| pb::StageSpec {
                name: stage.name.clone(),
                container: stage.container.clone().unwrap_or_default(),
                has_condition: stage.has_condition,
                timeout_seconds: stage.timeout_secs.unwrap_or(0),
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

/// A stored pipeline version on the wire.
pub fn pipeline_to_proto(pipeline: &PipelineRecord) -> pb::Pipeline {
    pb::Pipeline {
        id: pipeline.id.to_string(),
        name: pipeline.name.clone(),
        version: pipeline.version,
        source: pipeline.source.clone(),
        file_name: pipeline.file_name.clone(),
        definition: Some(definition_to_proto(&pipeline.definition)),
        create_time: Some(time_to_proto(pipeline.created_at)),
    }
}

/// A job on the wire, with its stages and transitions.
pub fn job_to_proto(job: &JobRecord, stages: &[StageRecord], transitions: &[Transition]) -> pb::Job {
    pb::Job {
        id: job.id.to_string(),
        pipeline_id: job.pipeline_id.to_string(),
        pipeline_name: job.pipeline_name.clone(),
        pipeline_version: job.pipeline_version,
        state: job_state_to_proto(job.state),
        failure_reason: failure_reason_to_proto(job.failure_reason),
        message: job.message.clone(),
        inputs: job.inputs.iter().map(|(name, value)| (name.clone(), input_value_to_proto(value))).collect(),
        stages: stages
            .iter()
            .map(|stage| pb::StageRun {
                name: stage.name.clone(),
                state: stage_state_to_proto(stage.state),
                start_time: stage.started_at.map(time_to_proto),
                end_time: stage.finished_at.map(time_to_proto),
                failure_reason: failure_reason_to_proto(stage.failure_reason),
                message: stage.message.clone(),
            })
            .collect(),
        attempt: job.attempt,
        runner_id: job.runner_id.map(|id| id.to_string()).unwrap_or_default(),
        create_time: Some(time_to_proto(job.created_at)),
        start_time: job.started_at.map(time_to_proto),
        end_time: job.finished_at.map(time_to_proto),
        transitions: transitions
            .iter()
            .map(|t| pb::JobTransition {
                state: job_state_to_proto(t.state),
                time: Some(time_to_proto(t.at)),
                message: t.message.clone(),
            })
            .collect(),
        outputs: job.outputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

/// The assignment message for a claimed job.
pub fn assign_job(job: &JobRecord, pipeline: &PipelineRecord, first_sequence: u64) -> pb::AssignJob {
    pb::AssignJob {
        assignment: Some(assignment_to_proto(job.assignment())),
        pipeline_name: pipeline.name.clone(),
        source: pipeline.source.clone(),
        file_name: pipeline.file_name.clone(),
        inputs: job.inputs.iter().map(|(name, value)| (name.clone(), input_value_to_proto(value))).collect(),
        // Secrets are delivered once a secret store exists; none are declared-and-stored yet.
        secrets: Default::default(),
        first_sequence,
        timeout_seconds: 0,
    }
}
