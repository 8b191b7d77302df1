//! What the orchestrator holds is bounded whatever a runner reports or a client reads:
//! runner reports are capped before they are stored, log pages are bounded by bytes, a
//! follower that stops reading costs a replica a bounded buffer and still gets every line,
//! and a job past its timeout ends even while its runner keeps heartbeating.

use std::time::{Duration, Instant};

use rivet_core::text::{MAX_LOG_LINE_BYTES, MAX_MESSAGE_BYTES};
use rivet_orchestrator::api::logs::PAGE_BYTES;
use rivet_orchestrator::domain::bounds::{MAX_OUTPUT_VALUE_BYTES, MAX_OUTPUTS, MAX_STAGE_NAME_BYTES};
use rivet_orchestrator::domain::coord::{FOLLOWER_BUFFER_BYTES, Topic};
use rivet_proto::v1::{self as pb, connect_request, connect_response};

use crate::both_backends;
use crate::support::{Backend, Cluster, FakeRunner, PATIENCE, pipeline_source};

const TRUNCATED: &str = "[truncated";

fn line(sequence: u64, stage: &str, text: String) -> pb::LogLine {
    pb::LogLine { sequence, time: None, level: pb::LogLevel::Info as i32, stage: stage.to_owned(), text, attempt: 0 }
}

async fn send_lines(runner: &FakeRunner, assign: &pb::AssignJob, lines: Vec<pb::LogLine>) {
    runner.send(connect_request::Body::LogBatch(pb::LogBatch { assignment: assign.assignment.clone(), lines })).await;
}

/// The next ack of the job, whatever it says.
async fn next_ack(runner: &mut FakeRunner) -> u64 {
    runner
        .expect("an ack", |body| match body {
            connect_response::Body::LogAck(ack) => Some(ack.sequence),
            _ => None,
        })
        .await
}

/// A running job on a fresh fake runner.
async fn running_job(cluster: &Cluster, name: &str) -> (crate::support::Api, FakeRunner, pb::AssignJob) {
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source(name, &[])).await;
    let mut runner = FakeRunner::connect(cluster.addr(0), 1, &[]).await;
    api.launch(name, &[("image", "x")]).await.unwrap();
    let assign = runner.assignment().await;
    runner.accept(&assign).await;
    let id = assign.assignment.as_ref().unwrap().job_id.clone();
    api.wait_for(&id, pb::JobState::Running).await;
    (api, runner, assign)
}

async fn runner_reports(backend: Backend) {
    let cluster = Cluster::start(backend).await;
    let (mut api, mut runner, assign) = running_job(&cluster, "capped").await;
    let job_id = assign.assignment.as_ref().unwrap().job_id.clone();
    let long_stage = "s".repeat(10 * 1024);

    runner
        .send(connect_request::Body::StageStarted(pb::StageStarted {
            assignment: assign.assignment.clone(),
            stage: long_stage.clone(),
            time: None,
        }))
        .await;
    // One line of 1 MiB with a 10 KiB stage name.
    send_lines(&runner, &assign, vec![line(1, &long_stage, "x".repeat(1024 * 1024))]).await;
    assert_eq!(next_ack(&mut runner).await, 1);
    // 100 lines of 70 KiB: cut to 64 KiB each, that is more than one batch may store, so
    // the ack stops short and the runner sends the rest again.
    let batch: Vec<pb::LogLine> = (2..=101).map(|sequence| line(sequence, "build", "y".repeat(70 * 1024))).collect();
    send_lines(&runner, &assign, batch.clone()).await;
    let partial = next_ack(&mut runner).await;
    assert!((2..101).contains(&partial), "a batch over its byte budget is stored in part (ack {partial})");
    send_lines(&runner, &assign, batch[(partial - 1) as usize..].to_vec()).await;
    assert_eq!(next_ack(&mut runner).await, 101);

    runner
        .send(connect_request::Body::StageFinished(pb::StageFinished {
            assignment: assign.assignment.clone(),
            stage: long_stage.clone(),
            state: pb::StageState::Failed as i32,
            failure_reason: pb::FailureReason::ScriptError as i32,
            message: "m".repeat(100 * 1024),
            time: None,
        }))
        .await;
    let mut outputs: std::collections::HashMap<String, String> =
        (0..150).map(|index| (format!("out{index:03}"), index.to_string())).collect();
    outputs.insert("out000".to_owned(), "v".repeat(100 * 1024));
    outputs.insert(format!("out001{}", "k".repeat(1024)), "long key".to_owned());
    let finished = pb::JobFinished {
        assignment: assign.assignment.clone(),
        state: pb::JobState::Failed as i32,
        failure_reason: pb::FailureReason::ScriptError as i32,
        message: "boom ".repeat(20 * 1024),
        last_sequence: 101,
        outputs,
    };
    runner.send(connect_request::Body::JobFinished(finished)).await;
    let job = api.wait_for(&job_id, pb::JobState::Failed).await;

    assert!(job.message.len() <= MAX_MESSAGE_BYTES && job.message.contains(TRUNCATED), "{}", job.message.len());
    assert_eq!(job.outputs.len(), MAX_OUTPUTS);
    assert!(job.outputs["out000"].len() <= MAX_OUTPUT_VALUE_BYTES && job.outputs["out000"].contains(TRUNCATED));
    assert!(job.outputs.keys().all(|key| key.len() <= 256), "output names are capped");
    let stage = &job.stages[0];
    assert!(stage.name.len() <= MAX_STAGE_NAME_BYTES && stage.name.ends_with("bytes]"), "{}", stage.name);
    assert!(stage.message.len() <= MAX_MESSAGE_BYTES && stage.message.contains(TRUNCATED));

    // A replay from the start comes in pages of at most PAGE_BYTES, every line capped.
    let request = pb::StreamLogsRequest { job_id: job_id.clone(), from_sequence: 1, follow: false };
    let mut stream = api.logs.stream_logs(request).await.unwrap().into_inner();
    let mut lines = Vec::new();
    let mut pages = 0;
    while let Some(page) = stream.message().await.unwrap() {
        let bytes: usize = page.lines.iter().map(|line| line.text.len() + line.stage.len()).sum();
        assert!(bytes <= PAGE_BYTES, "a page of {bytes} bytes");
        pages += 1;
        lines.extend(page.lines);
    }
    assert_eq!(lines.iter().map(|line| line.sequence).collect::<Vec<_>>(), (1..=101).collect::<Vec<_>>());
    assert!(pages >= 7, "6.4 MB of lines in 1 MiB pages, got {pages} pages");
    assert!(lines.iter().all(|line| line.text.len() <= MAX_LOG_LINE_BYTES && line.text.contains(TRUNCATED)));
    assert!(lines[0].stage.len() <= MAX_STAGE_NAME_BYTES);
}
both_backends!(runner_reports_are_capped_before_they_are_stored, runner_reports);

async fn stuck_follower(backend: Backend) {
    const LINES: u64 = 100_000;
    const BATCH: u64 = 1_000;
    let cluster = Cluster::start(backend).await;
    let (mut api, mut runner, assign) = running_job(&cluster, "flood").await;
    let job_id = assign.assignment.as_ref().unwrap().job_id.clone();
    let coord = cluster.replicas[0].as_ref().unwrap().orchestrator.coord();
    let text = |sequence: u64| format!("line {sequence} {}", "z".repeat(200));

    // A follower that subscribes, then reads nothing while the whole log is ingested.
    let request = pb::StreamLogsRequest { job_id: job_id.clone(), from_sequence: 1, follow: true };
    let mut stream = api.logs.stream_logs(request).await.unwrap().into_inner();
    let mut most_buffered = 0;
    for first in (1..=LINES).step_by(BATCH as usize) {
        let lines = (first..first + BATCH).map(|sequence| line(sequence, "build", text(sequence))).collect();
        send_lines(&runner, &assign, lines).await;
        runner.acked(&assign, first + BATCH - 1).await;
        most_buffered = most_buffered.max(coord.fanout_usage().buffered_bytes);
    }
    runner.finish(&assign, pb::JobState::Succeeded, LINES).await;
    api.wait_for(&job_id, pb::JobState::Succeeded).await;
    let usage = coord.fanout_usage();
    assert!(usage.lags > 0, "the follower's live buffer was dropped: {usage:?}");
    let bound = FOLLOWER_BUFFER_BYTES + Topic::JobEvents(uuid::Uuid::nil()).buffer_bytes();
    assert!(most_buffered <= bound, "the replica buffered {most_buffered} bytes for one follower (bound {bound})");

    // Now it reads: every line once, in order, from the store where the live ones were dropped.
    let mut sequences = Vec::with_capacity(LINES as usize);
    while let Some(page) =
        tokio::time::timeout(PATIENCE, stream.message()).await.expect("log stream stalled").expect("log stream")
    {
        for line in page.lines {
            assert_eq!(line.text, text(line.sequence));
            sequences.push(line.sequence);
        }
    }
    assert_eq!(sequences.len() as u64, LINES);
    assert!(sequences.iter().copied().eq(1..=LINES), "every line once, in order");
}
both_backends!(a_follower_that_stops_reading_costs_a_bounded_buffer_and_misses_nothing, stuck_follower);

async fn job_timeout_backstop(backend: Backend) {
    const TIMEOUT: u64 = 2;
    const GRACE: u64 = 1;
    let cluster = Cluster::with(backend, 1, |config| {
        config.job_timeout_secs = TIMEOUT;
        config.job_timeout_grace_secs = GRACE;
    })
    .await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("endless", &[])).await;
    let mut runner = FakeRunner::connect(cluster.addr(0), 1, &[]).await;
    let job = api.launch("endless", &[("image", "x")]).await.unwrap();
    let assign = runner.assignment().await;
    assert_eq!(assign.timeout_seconds, TIMEOUT);
    // The runner accepts and keeps heartbeating, but never reports the job's end.
    let started = Instant::now();
    runner.accept(&assign).await;
    let reason = runner
        .expect("a cancel", |body| match body {
            connect_response::Body::CancelJob(cancel) if cancel.assignment == assign.assignment => Some(cancel.reason),
            _ => None,
        })
        .await;
    let elapsed = started.elapsed();
    assert_eq!(reason, pb::FailureReason::Timeout as i32);
    let budget = Duration::from_secs(TIMEOUT + GRACE);
    assert!(elapsed >= budget, "ended after {elapsed:?}, before its timeout plus grace");
    // The sweep runs every lease_ttl / 3 (1 s here), after a first wait of one TTL (3 s).
    assert!(elapsed <= budget + Duration::from_secs(4), "ended after {elapsed:?}");
    let ended = api.job(&job.id).await;
    assert_eq!(ended.state(), pb::JobState::TimedOut);
    assert_eq!(ended.failure_reason(), pb::FailureReason::Timeout);
    assert!(ended.message.contains("job_timeout_secs"), "{}", ended.message);

    // The runner's late finish is refused and changes nothing.
    runner.finish(&assign, pb::JobState::Succeeded, 0).await;
    let refused = runner
        .expect("the finish refused", |body| match body {
            connect_response::Body::Refused(refused)
                if refused.assignment == assign.assignment && refused.reason.contains("stale assignment") =>
            {
                Some(refused.reason)
            }
            _ => None,
        })
        .await;
    assert!(refused.contains("no longer) assigned to this runner"), "{refused}");
    assert_eq!(api.job(&job.id).await.state(), pb::JobState::TimedOut);
}
both_backends!(a_job_past_its_timeout_and_grace_is_ended_by_the_orchestrator, job_timeout_backstop);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_whose_labels_are_too_long_is_refused_with_the_limit() {
    let cluster = Cluster::start(Backend::Sqlite).await;
    let long = "l".repeat(300);
    let refused = FakeRunner::connect_as(cluster.addr(0), uuid::Uuid::new_v4(), 1, &[("os", &long)], Vec::new(), None)
        .await
        .err()
        .expect("the hello is refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("is 300 bytes, over the 256-byte limit"), "{}", refused.message());
}
