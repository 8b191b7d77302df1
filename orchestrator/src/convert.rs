//! Conversions of the orchestrator's records to wire types; the conversions of the shared
//! domain types live in `rivet_proto::convert` and are re-exported here.

pub use rivet_proto::convert::*;
use rivet_proto::v1 as pb;

use crate::domain::error::Error;
use crate::domain::store::{JobRecord, PipelineRecord, StageRecord, Transition};

/// A request's id field, as the domain's error.
pub fn id(text: &str, field: &str) -> Result<uuid::Uuid, Error> {
    Ok(uuid(text, field)?)
}

impl From<ConvertError> for Error {
    fn from(err: ConvertError) -> Error {
        Error::InvalidArgument { field: err.field, message: err.message }
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
        plugin_pins: pipeline
            .plugins
            .iter()
            .map(|pin| pb::PluginPin {
                name: pin.name.clone(),
                version: pin.version.clone(),
                sha256: pin.sha256.clone(),
            })
            .collect(),
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
        trace_id: job.trace.map(|trace| trace.trace_id_hex()).unwrap_or_default(),
        origin: Some(origin_to_proto(&job.origin)),
    }
}
