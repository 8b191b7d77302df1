//! The runner's side of the wire: assignments in, reports out. Shared conversions live in
//! `rivet_proto::convert`.

use rivet_core::Assignment;
use rivet_proto::convert;
use rivet_proto::v1::{self as pb, connect_request};

use crate::job::{JobEvent, JobOutcome, JobSpec};

/// An assignment from the wire; `None` when malformed.
pub fn assignment(assignment: pb::Assignment) -> Option<Assignment> {
    convert::assignment_from_proto(Some(&assignment), "assignment").ok()
}

/// An assignment on the wire.
pub fn assignment_to_proto(assignment: Assignment) -> pb::Assignment {
    convert::assignment_to_proto(assignment)
}

/// The job spec of an assignment; `None` when malformed.
pub fn job_spec(assign: pb::AssignJob) -> Option<JobSpec> {
    let assignment = convert::assignment_from_proto(assign.assignment.as_ref(), "assignment").ok()?;
    let inputs = assign
        .inputs
        .iter()
        .filter_map(|(name, value)| Some((name.clone(), convert::input_value_from_proto(value)?)))
        .collect();
    Some(JobSpec {
        assignment,
        pipeline_name: assign.pipeline_name,
        source: assign.source,
        file_name: assign.file_name,
        inputs,
        secrets: assign.secrets.into_iter().collect(),
        first_sequence: assign.first_sequence.max(1),
        timeout: (assign.timeout_seconds > 0).then(|| std::time::Duration::from_secs(assign.timeout_seconds)),
        plugins: assign.plugins.into_iter().map(convert::pinned_plugin_from_proto).collect(),
    })
}

/// A stage event as a runner message; `None` for log lines (they travel in batches).
pub fn stage_event(assignment: Assignment, event: &JobEvent) -> Option<connect_request::Body> {
    let wire = Some(convert::assignment_to_proto(assignment));
    match event {
        JobEvent::StageStarted { stage, at } => Some(connect_request::Body::StageStarted(pb::StageStarted {
            assignment: wire,
            stage: stage.clone(),
            time: Some(convert::time_to_proto(*at)),
        })),
        JobEvent::StageFinished { stage, state, failure_reason, message, at } => {
            Some(connect_request::Body::StageFinished(pb::StageFinished {
                assignment: wire,
                stage: stage.clone(),
                state: convert::stage_state_to_proto(*state),
                failure_reason: convert::failure_reason_to_proto(*failure_reason),
                message: message.clone(),
                time: Some(convert::time_to_proto(*at)),
            }))
        }
        JobEvent::Log(_) => None,
    }
}

/// A log line on the wire.
pub fn log_line(line: &rivet_core::LogLine) -> pb::LogLine {
    convert::log_line_to_proto(line)
}

/// The finish message of a job.
pub fn job_finished(assignment: Assignment, outcome: &JobOutcome) -> pb::JobFinished {
    pb::JobFinished {
        assignment: Some(convert::assignment_to_proto(assignment)),
        state: convert::job_state_to_proto(outcome.state),
        failure_reason: convert::failure_reason_to_proto(outcome.failure_reason),
        message: outcome.message.clone(),
        last_sequence: outcome.last_sequence,
        outputs: outcome.outputs.clone().into_iter().collect(),
    }
}
