//! The runner protocol at the edge: `RunnerService.Connect`'s envelopes to and from
//! `rivet_core::protocol`'s messages. Decoding checks every required field once, here; the
//! orchestrator and the runner only ever see the domain messages.

use std::time::Duration;

use rivet_core::plugin::{PinnedPlugin, PluginPin};
use rivet_core::protocol::{
    AssignJob, FromRunner, Heartbeat, Hello, JobFinished, LogAck, LogBatch, RunningJob, StageFinished, StageStarted,
    ToRunner, Welcome,
};
use uuid::Uuid;

use super::{
    ConvertError, ConvertResult, assignment_from_proto, assignment_to_proto, failure_reason_from_proto,
    failure_reason_to_proto, input_value_from_proto, input_value_to_proto, job_state_from_proto, job_state_to_proto,
    log_line_from_proto, log_line_to_proto, stage_state_from_proto, stage_state_to_proto, time_from_proto,
    time_to_proto, uuid,
};
use crate::v1::{self as pb, connect_request, connect_response};

impl TryFrom<pb::ConnectRequest> for FromRunner {
    type Error = ConvertError;

    fn try_from(request: pb::ConnectRequest) -> ConvertResult<FromRunner> {
        use connect_request::Body;
        let body = request.body.ok_or_else(|| ConvertError::new("body", "is required"))?;
        Ok(match body {
            Body::Hello(hello) => FromRunner::Hello(hello_from_proto(hello)?),
            Body::Heartbeat(beat) => FromRunner::Heartbeat(Heartbeat {
                running_jobs: running_jobs_from_proto(beat.running_jobs, "heartbeat.running_jobs")?,
                draining: beat.draining,
            }),
            Body::JobAccepted(accepted) => {
                FromRunner::Accepted(assignment_from_proto(accepted.assignment.as_ref(), "job_accepted.assignment")?)
            }
            Body::JobRejected(rejected) => FromRunner::Rejected {
                assignment: assignment_from_proto(rejected.assignment.as_ref(), "job_rejected.assignment")?,
                reason: rejected.reason,
            },
            Body::StageStarted(started) => FromRunner::StageStarted(StageStarted {
                assignment: assignment_from_proto(started.assignment.as_ref(), "stage_started.assignment")?,
                stage: started.stage,
                at: time_from_proto(started.time.as_ref()),
            }),
            Body::StageFinished(finished) => FromRunner::StageFinished(StageFinished {
                assignment: assignment_from_proto(finished.assignment.as_ref(), "stage_finished.assignment")?,
                stage: finished.stage,
                state: stage_state_from_proto(finished.state)?,
                failure_reason: failure_reason_from_proto(finished.failure_reason),
                message: finished.message,
                at: time_from_proto(finished.time.as_ref()),
            }),
            Body::LogBatch(batch) => {
                let assignment = assignment_from_proto(batch.assignment.as_ref(), "log_batch.assignment")?;
                let lines = batch
                    .lines
                    .into_iter()
                    .map(|line| log_line_from_proto(line, assignment.attempt))
                    .collect::<ConvertResult<Vec<_>>>()?;
                FromRunner::Logs(LogBatch { assignment, lines })
            }
            Body::JobFinished(finished) => FromRunner::Finished(JobFinished {
                assignment: assignment_from_proto(finished.assignment.as_ref(), "job_finished.assignment")?,
                state: job_state_from_proto(finished.state)?,
                failure_reason: failure_reason_from_proto(finished.failure_reason),
                message: finished.message,
                last_sequence: finished.last_sequence,
                outputs: finished.outputs.into_iter().collect(),
            }),
        })
    }
}

impl From<FromRunner> for pb::ConnectRequest {
    fn from(message: FromRunner) -> pb::ConnectRequest {
        use connect_request::Body;
        let body = match message {
            FromRunner::Hello(hello) => Body::Hello(pb::RunnerHello {
                protocol_versions: hello.protocol_versions,
                runner_id: hello.runner_id.to_string(),
                name: hello.name,
                labels: hello.labels.into_iter().collect(),
                capacity: hello.capacity,
                running_jobs: running_jobs_to_proto(hello.running_jobs),
                version: hello.version,
            }),
            FromRunner::Heartbeat(beat) => Body::Heartbeat(pb::RunnerHeartbeat {
                running_jobs: running_jobs_to_proto(beat.running_jobs),
                draining: beat.draining,
            }),
            FromRunner::Accepted(assignment) => {
                Body::JobAccepted(pb::JobAccepted { assignment: Some(assignment_to_proto(assignment)) })
            }
            FromRunner::Rejected { assignment, reason } => {
                Body::JobRejected(pb::JobRejected { assignment: Some(assignment_to_proto(assignment)), reason })
            }
            FromRunner::StageStarted(started) => Body::StageStarted(pb::StageStarted {
                assignment: Some(assignment_to_proto(started.assignment)),
                stage: started.stage,
                time: Some(time_to_proto(started.at)),
            }),
            FromRunner::StageFinished(finished) => Body::StageFinished(pb::StageFinished {
                assignment: Some(assignment_to_proto(finished.assignment)),
                stage: finished.stage,
                state: stage_state_to_proto(finished.state),
                failure_reason: failure_reason_to_proto(finished.failure_reason),
                message: finished.message,
                time: Some(time_to_proto(finished.at)),
            }),
            FromRunner::Logs(batch) => Body::LogBatch(pb::LogBatch {
                assignment: Some(assignment_to_proto(batch.assignment)),
                lines: batch.lines.iter().map(log_line_to_proto).collect(),
            }),
            FromRunner::Finished(finished) => Body::JobFinished(pb::JobFinished {
                assignment: Some(assignment_to_proto(finished.assignment)),
                state: job_state_to_proto(finished.state),
                failure_reason: failure_reason_to_proto(finished.failure_reason),
                message: finished.message,
                last_sequence: finished.last_sequence,
                outputs: finished.outputs.into_iter().collect(),
            }),
        };
        pb::ConnectRequest { body: Some(body) }
    }
}

impl TryFrom<pb::ConnectResponse> for ToRunner {
    type Error = ConvertError;

    fn try_from(response: pb::ConnectResponse) -> ConvertResult<ToRunner> {
        use connect_response::Body;
        let body = response.body.ok_or_else(|| ConvertError::new("body", "is required"))?;
        Ok(match body {
            Body::Welcome(welcome) => ToRunner::Welcome(Welcome {
                protocol_version: welcome.protocol_version,
                lease_ttl: Duration::from_millis(welcome.lease_ttl_ms),
                heartbeat_interval: Duration::from_millis(welcome.heartbeat_interval_ms),
                abandon: welcome
                    .abandon
                    .iter()
                    .map(|assignment| assignment_from_proto(Some(assignment), "welcome.abandon"))
                    .collect::<ConvertResult<_>>()?,
                acks: welcome
                    .acks
                    .into_iter()
                    .map(|ack| log_ack_from_proto(ack, "welcome.acks.job_id"))
                    .collect::<ConvertResult<_>>()?,
            }),
            Body::AssignJob(assign) => ToRunner::Assign(assign_job_from_proto(assign)?),
            Body::CancelJob(cancel) => ToRunner::Cancel {
                assignment: assignment_from_proto(cancel.assignment.as_ref(), "cancel_job.assignment")?,
                reason: failure_reason_from_proto(cancel.reason),
            },
            Body::LogAck(ack) => ToRunner::LogAck(log_ack_from_proto(ack, "log_ack.job_id")?),
            Body::Drain(drain) => ToRunner::Drain { reason: drain.reason },
            Body::Refused(refused) => ToRunner::Refused {
                assignment: assignment_from_proto(refused.assignment.as_ref(), "refused.assignment")?,
                reason: refused.reason,
            },
            Body::JobClosed(closed) => {
                ToRunner::Closed(assignment_from_proto(closed.assignment.as_ref(), "job_closed.assignment")?)
            }
        })
    }
}

impl From<ToRunner> for pb::ConnectResponse {
    fn from(message: ToRunner) -> pb::ConnectResponse {
        use connect_response::Body;
        let body = match message {
            ToRunner::Welcome(welcome) => Body::Welcome(pb::RunnerWelcome {
                protocol_version: welcome.protocol_version,
                lease_ttl_ms: millis(welcome.lease_ttl),
                heartbeat_interval_ms: millis(welcome.heartbeat_interval),
                abandon: welcome.abandon.into_iter().map(assignment_to_proto).collect(),
                acks: welcome.acks.into_iter().map(log_ack_to_proto).collect(),
            }),
            ToRunner::Assign(assign) => Body::AssignJob(pb::AssignJob {
                assignment: Some(assignment_to_proto(assign.assignment)),
                pipeline_name: assign.pipeline_name,
                source: assign.source,
                file_name: assign.file_name,
                inputs: assign.inputs.iter().map(|(name, value)| (name.clone(), input_value_to_proto(value))).collect(),
                secrets: assign.secrets.into_iter().collect(),
                first_sequence: assign.first_sequence,
                timeout_seconds: assign.timeout.map_or(0, |timeout| timeout.as_secs()),
                plugins: assign.plugins.iter().map(pinned_plugin_to_proto).collect(),
                traceparent: assign.trace.map(|trace| trace.to_string()).unwrap_or_default(),
                origin: Some(super::origin_to_proto(&assign.origin)),
            }),
            ToRunner::Cancel { assignment, reason } => Body::CancelJob(pb::CancelJob {
                assignment: Some(assignment_to_proto(assignment)),
                reason: failure_reason_to_proto(reason),
            }),
            ToRunner::LogAck(ack) => Body::LogAck(log_ack_to_proto(ack)),
            ToRunner::Drain { reason } => Body::Drain(pb::Drain { reason }),
            ToRunner::Refused { assignment, reason } => {
                Body::Refused(pb::Refused { assignment: Some(assignment_to_proto(assignment)), reason })
            }
            ToRunner::Closed(assignment) => {
                Body::JobClosed(pb::JobClosed { assignment: Some(assignment_to_proto(assignment)) })
            }
        };
        pb::ConnectResponse { body: Some(body) }
    }
}

fn hello_from_proto(hello: pb::RunnerHello) -> ConvertResult<Hello> {
    let runner_id = Uuid::parse_str(&hello.runner_id)
        .map_err(|err| ConvertError::new("hello.runner_id", format!("is not a UUID: {err}")))?;
    Ok(Hello {
        protocol_versions: hello.protocol_versions,
        runner_id,
        name: hello.name,
        labels: hello.labels.into_iter().collect(),
        capacity: hello.capacity,
        running_jobs: running_jobs_from_proto(hello.running_jobs, "hello.running_jobs.assignment")?,
        version: hello.version,
    })
}

fn running_jobs_from_proto(jobs: Vec<pb::RunningJob>, field: &str) -> ConvertResult<Vec<RunningJob>> {
    jobs.into_iter()
        .map(|job| {
            Ok(RunningJob {
                assignment: assignment_from_proto(job.assignment.as_ref(), field)?,
                last_sequence: job.last_sequence,
            })
        })
        .collect()
}

fn running_jobs_to_proto(jobs: Vec<RunningJob>) -> Vec<pb::RunningJob> {
    jobs.into_iter()
        .map(|job| pb::RunningJob {
            assignment: Some(assignment_to_proto(job.assignment)),
            last_sequence: job.last_sequence,
        })
        .collect()
}

fn assign_job_from_proto(assign: pb::AssignJob) -> ConvertResult<AssignJob> {
    let assignment = assignment_from_proto(assign.assignment.as_ref(), "assign_job.assignment")?;
    let inputs = assign
        .inputs
        .iter()
        .map(|(name, value)| {
            let value = input_value_from_proto(value)
                .ok_or_else(|| ConvertError::new(&format!("assign_job.inputs.{name}"), "has no value"))?;
            Ok((name.clone(), value))
        })
        .collect::<ConvertResult<_>>()?;
    Ok(AssignJob {
        assignment,
        pipeline_name: assign.pipeline_name,
        source: assign.source,
        file_name: assign.file_name,
        inputs,
        secrets: assign.secrets.into_iter().collect(),
        // Sequences start at 1; an unset field means the job's first attempt.
        first_sequence: assign.first_sequence.max(1),
        timeout: (assign.timeout_seconds > 0).then(|| Duration::from_secs(assign.timeout_seconds)),
        plugins: assign.plugins.into_iter().map(pinned_plugin_from_proto).collect(),
        // Advisory: a trace context that does not parse starts a trace of the runner's own
        // rather than failing the job.
        trace: assign.traceparent.parse().ok(),
        origin: super::origin_from_proto(assign.origin.as_ref()),
    })
}

/// A pinned plugin with its source on the wire.
fn pinned_plugin_to_proto(plugin: &PinnedPlugin) -> pb::PinnedPlugin {
    pb::PinnedPlugin {
        name: plugin.pin.name.clone(),
        version: plugin.pin.version.clone(),
        sha256: plugin.pin.sha256.clone(),
        source: plugin.source.clone(),
    }
}

/// A pinned plugin from the wire; the runner checks the source against the hash when it
/// loads it.
fn pinned_plugin_from_proto(plugin: pb::PinnedPlugin) -> PinnedPlugin {
    let pin = PluginPin { name: plugin.name, version: plugin.version, sha256: plugin.sha256 };
    PinnedPlugin { pin, source: plugin.source }
}

fn log_ack_from_proto(ack: pb::LogAck, field: &str) -> ConvertResult<LogAck> {
    Ok(LogAck { job_id: uuid(&ack.job_id, field)?, sequence: ack.sequence })
}

fn log_ack_to_proto(ack: LogAck) -> pb::LogAck {
    pb::LogAck { job_id: ack.job_id.to_string(), sequence: ack.sequence }
}

/// A duration on the wire in milliseconds, saturating (no configured duration comes near).
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};
    use rivet_core::{Assignment, FailureReason, InputValue, JobState, LogLevel, LogLine, StageState};

    use super::*;

    fn assignment() -> Assignment {
        Assignment { job_id: Uuid::from_u128(7), attempt: 2, epoch: 9 }
    }

    fn at() -> chrono::DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000, 123_000_000).single().unwrap_or_else(Utc::now)
    }

    /// Every message survives encoding and decoding unchanged.
    fn round_trips<T, W>(message: T)
    where
        T: Clone + PartialEq + std::fmt::Debug + Into<W> + TryFrom<W, Error = ConvertError>,
    {
        let decoded = T::try_from(message.clone().into()).unwrap_or_else(|err| panic!("{message:?}: {err}"));
        assert_eq!(decoded, message);
    }

    #[test]
    fn every_runner_message_round_trips() {
        let job = RunningJob { assignment: assignment(), last_sequence: 12 };
        let messages = vec![
            FromRunner::Hello(Hello {
                protocol_versions: vec![2],
                runner_id: Uuid::from_u128(1),
                name: "box".into(),
                labels: BTreeMap::from([("os".into(), "linux".into())]),
                capacity: 3,
                running_jobs: vec![job],
                version: "0.1.0".into(),
            }),
            FromRunner::Heartbeat(Heartbeat { running_jobs: vec![job], draining: true }),
            FromRunner::Accepted(assignment()),
            FromRunner::Rejected { assignment: assignment(), reason: "full".into() },
            FromRunner::StageStarted(StageStarted { assignment: assignment(), stage: "build".into(), at: at() }),
            FromRunner::StageFinished(StageFinished {
                assignment: assignment(),
                stage: "build".into(),
                state: StageState::Failed,
                failure_reason: Some(FailureReason::ExitCode),
                message: "exit 1".into(),
                at: at(),
            }),
            FromRunner::Logs(LogBatch {
                assignment: assignment(),
                lines: vec![LogLine {
                    sequence: 5,
                    time: at(),
                    level: LogLevel::Warning,
                    stage: "build".into(),
                    text: "careful".into(),
                    attempt: 2,
                }],
            }),
            FromRunner::Finished(JobFinished {
                assignment: assignment(),
                state: JobState::Succeeded,
                failure_reason: None,
                message: String::new(),
                last_sequence: 5,
                outputs: BTreeMap::from([("digest".into(), "sha256:0".into())]),
            }),
        ];
        for message in messages {
            round_trips::<FromRunner, pb::ConnectRequest>(message);
        }
    }

    #[test]
    fn every_orchestrator_message_round_trips() {
        let messages = vec![
            ToRunner::Welcome(Welcome {
                protocol_version: 2,
                lease_ttl: Duration::from_secs(15),
                heartbeat_interval: Duration::from_secs(3),
                abandon: vec![assignment()],
                acks: vec![LogAck { job_id: Uuid::from_u128(8), sequence: 4 }],
            }),
            ToRunner::Assign(AssignJob {
                assignment: assignment(),
                pipeline_name: "p".into(),
                source: "return 1".into(),
                file_name: "p.lua".into(),
                inputs: BTreeMap::from([("n".into(), InputValue::Number(2.0))]),
                secrets: BTreeMap::from([("token".into(), "s3cret".into())]),
                first_sequence: 11,
                timeout: Some(Duration::from_secs(60)),
                plugins: vec![PinnedPlugin {
                    pin: PluginPin { name: "git".into(), version: "1.2.0".into(), sha256: "ab".repeat(32) },
                    source: "return {}".into(),
                }],
                trace: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().ok(),
                origin: rivet_core::JobOrigin::Trigger {
                    trigger_id: Uuid::from_u128(5),
                    delivery_id: "d-1".into(),
                    event: "push".into(),
                    sha: "ab".repeat(20),
                    git_ref: "refs/heads/main".into(),
                },
            }),
            ToRunner::Cancel { assignment: assignment(), reason: Some(FailureReason::Timeout) },
            ToRunner::LogAck(LogAck { job_id: Uuid::from_u128(8), sequence: 4 }),
            ToRunner::Drain { reason: "bye".into() },
            ToRunner::Refused { assignment: assignment(), reason: "stale".into() },
            ToRunner::Closed(assignment()),
        ];
        for message in messages {
            round_trips::<ToRunner, pb::ConnectResponse>(message);
        }
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let check = |request: pb::ConnectRequest, field: &str| {
            let err = FromRunner::try_from(request).err().unwrap_or_else(|| panic!("{field} was accepted"));
            assert_eq!(err.field, field, "{err}");
        };
        check(pb::ConnectRequest { body: None }, "body");
        let body = |body| pb::ConnectRequest { body: Some(body) };
        check(
            body(connect_request::Body::JobAccepted(pb::JobAccepted { assignment: None })),
            "job_accepted.assignment",
        );
        let hello = pb::RunnerHello { runner_id: "nope".into(), ..Default::default() };
        check(body(connect_request::Body::Hello(hello)), "hello.runner_id");
        let line = pb::LogLine { sequence: 0, ..Default::default() };
        let batch = pb::LogBatch { assignment: Some(assignment_to_proto(assignment())), lines: vec![line] };
        check(body(connect_request::Body::LogBatch(batch)), "log_batch.lines.sequence");
        let ack = pb::ConnectResponse { body: Some(connect_response::Body::LogAck(pb::LogAck::default())) };
        assert_eq!(ToRunner::try_from(ack).err().map(|err| err.field), Some("log_ack.job_id".to_owned()));
    }
}
