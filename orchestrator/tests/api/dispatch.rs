//! Push dispatch over runner streams, fenced leases, and live logs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rivet_proto::v1::{self as pb, connect_request, connect_response};
use tokio::sync::Mutex;

use crate::both_backends;
use crate::support::{Backend, Cluster, FakeRunner, pipeline_source};

async fn pushed_job_and_live_logs(backend: Backend) {
    let cluster = Cluster::start(backend).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("live", &[("os", "linux")])).await;
    let mut runner = FakeRunner::connect(cluster.addr(0), 1, &[("os", "linux"), ("arch", "x86_64")]).await;
    let job = api.launch("live", &[("image", "app")]).await.unwrap();
    let assign = runner.assignment().await;
    assert_eq!(assign.first_sequence, 1);
    assert_eq!(assign.pipeline_name, "live");
    assert!(assign.source.contains("pipeline.define"));
    assert!(assign.inputs.contains_key("image"));
    runner.accept(&assign).await;
    api.wait_for(&job.id, pb::JobState::Running).await;

    // A follower from the start, attached before any line exists.
    let mut follower_api = api.clone();
    let job_id = job.id.clone();
    let follower = tokio::spawn(async move { follower_api.follow(&job_id, 0).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    for batch in 0..10u64 {
        runner.log(&assign, batch * 100 + 1..=batch * 100 + 100).await;
    }
    runner.acked(&assign, 1000).await;
    // Duplicates (a resend after a reconnect) are dropped.
    runner.log(&assign, 901..=1000).await;
    runner
        .send(connect_request::Body::StageFinished(pb::StageFinished {
            assignment: assign.assignment.clone(),
            stage: "build".into(),
            state: pb::StageState::Succeeded as i32,
            ..Default::default()
        }))
        .await;
    runner.finish(&assign, pb::JobState::Succeeded, 1000).await;
    runner.expect("job closed", |body| matches!(body, connect_response::Body::JobClosed(_)).then_some(())).await;

    let lines = follower.await.unwrap();
    let sequences: Vec<u64> = lines.iter().map(|l| l.sequence).collect();
    assert_eq!(sequences, (1..=1000).collect::<Vec<_>>(), "every line once, in order");
    assert_eq!(lines[41].text, "line 42");
    let done = api.wait_for(&job.id, pb::JobState::Succeeded).await;
    assert_eq!(done.stages.len(), 1);
    assert_eq!(done.stages[0].state(), pb::StageState::Succeeded);
    let states: Vec<pb::JobState> = done.transitions.iter().map(|t| t.state()).collect();
    assert_eq!(states, [pb::JobState::Queued, pb::JobState::Assigned, pb::JobState::Running, pb::JobState::Succeeded]);
    // A late follower replays the stored log and ends.
    assert_eq!(api.follow(&job.id, 990).await.len(), 11);
}
both_backends!(a_pushed_job_streams_logs_to_a_follower, pushed_job_and_live_logs);

async fn two_runners_race(backend: Backend) {
    let cluster = Cluster::start(backend).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("race", &[])).await;
    let mut a = FakeRunner::connect(cluster.addr(0), 1, &[]).await;
    let mut b = FakeRunner::connect(cluster.addr(0), 1, &[]).await;
    api.launch("race", &[("image", "x")]).await.unwrap();
    let wait = Duration::from_secs(3);
    let (got_a, got_b) = tokio::join!(a.next_within(wait), b.next_within(wait));
    let assigned = |body: &Option<connect_response::Body>| matches!(body, Some(connect_response::Body::AssignJob(_)));
    assert!(assigned(&got_a) ^ assigned(&got_b), "exactly one runner must get the job: {got_a:?} / {got_b:?}");
}
both_backends!(two_runners_race_for_one_job, two_runners_race);

async fn many_jobs_many_runners(backend: Backend) {
    let (jobs, runners) = if backend == Backend::Postgres { (1000, 10) } else { (200, 4) };
    let cluster = Cluster::start(backend).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("bulk", &[])).await;
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..runners {
        let mut runner = FakeRunner::connect(cluster.addr(0), 4, &[]).await;
        let runs = runs.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(body) = runner.next_within(Duration::from_secs(5)).await {
                if let connect_response::Body::AssignJob(assign) = body {
                    runner.accept(&assign).await;
                    runner.finish(&assign, pb::JobState::Succeeded, 0).await;
                    let id = assign.assignment.unwrap().job_id;
                    *runs.lock().await.entry(id).or_default() += 1;
                }
            }
        }));
    }
    let mut launched = Vec::new();
    for _ in 0..jobs {
        launched.push(api.launch("bulk", &[("image", "x")]).await.unwrap().id);
    }
    for task in tasks {
        task.await.unwrap();
    }
    let runs = runs.lock().await;
    assert_eq!(runs.len(), jobs, "every job must run");
    assert!(runs.values().all(|count| *count == 1), "a job ran twice");
    for id in launched.iter().step_by(97) {
        assert_eq!(api.job(id).await.state(), pb::JobState::Succeeded);
    }
}
both_backends!(every_job_runs_exactly_once_across_runners, many_jobs_many_runners);

async fn cancel_running(backend: Backend) {
    let cluster = Cluster::start(backend).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("stop", &[])).await;
    let mut runner = FakeRunner::connect(cluster.addr(0), 1, &[]).await;
    let job = api.launch("stop", &[("image", "x")]).await.unwrap();
    let assign = runner.assignment().await;
    runner.accept(&assign).await;
    api.wait_for(&job.id, pb::JobState::Running).await;
    api.jobs.cancel_job(pb::CancelJobRequest { job_id: job.id.clone() }).await.unwrap();
    let cancel = runner
        .expect("a cancel", |body| match body {
            connect_response::Body::CancelJob(cancel) => Some(cancel),
            _ => None,
        })
        .await;
    assert_eq!(cancel.assignment, assign.assignment);
    assert_eq!(cancel.reason(), pb::FailureReason::Cancelled);
    runner.finish(&assign, pb::JobState::Cancelled, 0).await;
    let done = api.wait_for(&job.id, pb::JobState::Cancelled).await;
    assert!(done.end_time.is_some());
}
both_backends!(cancel_reaches_the_runner, cancel_running);

async fn vanished_runner(backend: Backend) {
    let cluster = Cluster::start(backend).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("resilient", &[])).await;
    let first_id = uuid::Uuid::new_v4();
    let mut first = FakeRunner::connect_as(cluster.addr(0), first_id, 1, &[], Vec::new(), None).await.unwrap();
    let job = api.launch("resilient", &[("image", "x")]).await.unwrap();
    let old = first.assignment().await;
    first.accept(&old).await;
    first.log(&old, 1..=10).await;
    first.acked(&old, 10).await;
    // The runner vanishes: no goodbye, no more heartbeats.
    drop(first);

    let mut second = FakeRunner::connect(cluster.addr(0), 1, &[]).await;
    let new = second.assignment().await;
    let new_assignment = new.assignment.clone().unwrap();
    assert_eq!(new_assignment.job_id, job.id);
    assert_eq!(new_assignment.attempt, 2);
    assert!(new_assignment.epoch > old.assignment.as_ref().unwrap().epoch);
    assert_eq!(new.first_sequence, 11, "the new attempt continues the log");
    second.accept(&new).await;
    second.log(&new, 11..=20).await;
    second.finish(&new, pb::JobState::Succeeded, 20).await;
    let done = api.wait_for(&job.id, pb::JobState::Succeeded).await;
    assert_eq!(done.attempt, 2);

    // The first runner comes back and reports on the old attempt: refused.
    let running = vec![pb::RunningJob { assignment: old.assignment.clone(), last_sequence: 12 }];
    let mut back = FakeRunner::connect_as(cluster.addr(0), first_id, 1, &[], running, None).await.unwrap();
    assert_eq!(back.welcome.abandon, vec![old.assignment.clone().unwrap()]);
    back.log(&old, 11..=12).await;
    back.refused(&old).await;
    back.finish(&old, pb::JobState::Failed, 12).await;
    back.refused(&old).await;
    let after = api.job(&job.id).await;
    assert_eq!(after.state(), pb::JobState::Succeeded, "the job must not be finished twice");
    let lines = api.follow(&job.id, 0).await;
    assert_eq!(lines.iter().map(|l| l.sequence).collect::<Vec<_>>(), (1..=20).collect::<Vec<_>>());
    assert!(lines[..10].iter().all(|l| l.attempt == 1) && lines[10..].iter().all(|l| l.attempt == 2));
}
both_backends!(a_vanished_runners_job_is_requeued_and_its_reports_refused, vanished_runner);

async fn lost_after_attempts(backend: Backend) {
    let cluster = Cluster::with(backend, 1, |c| c.max_attempts = 1).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("fragile", &[])).await;
    let mut runner = FakeRunner::connect(cluster.addr(0), 1, &[]).await;
    let job = api.launch("fragile", &[("image", "x")]).await.unwrap();
    let assign = runner.assignment().await;
    runner.accept(&assign).await;
    drop(runner);
    let lost = api.wait_for(&job.id, pb::JobState::Lost).await;
    assert_eq!(lost.failure_reason(), pb::FailureReason::RunnerLost);
}
both_backends!(a_job_out_of_attempts_is_lost, lost_after_attempts);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_runners_and_refuses_new_work() {
    let mut cluster = Cluster::start(Backend::Sqlite).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("late", &[])).await;
    let mut runner = FakeRunner::connect(cluster.addr(0), 1, &[]).await;
    let server = cluster.replicas[0].take().expect("running");
    let shutdown = tokio::spawn(server.shutdown());
    let drain = runner
        .expect("a drain", |body| match body {
            connect_response::Body::Drain(drain) => Some(drain),
            _ => None,
        })
        .await;
    assert!(drain.reason.contains("shutting down"), "{}", drain.reason);
    let refused = api.launch("late", &[("image", "x")]).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    // The runner leaves, as a real one does on a drain; the shutdown then completes.
    drop(runner);
    tokio::time::timeout(crate::support::PATIENCE, shutdown).await.expect("shutdown finishes").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_timeout_reaches_the_runner_with_the_assignment() {
    let cluster = Cluster::with(Backend::Sqlite, 1, |c| c.job_timeout_secs = 90).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("bounded", &[])).await;
    let mut runner = FakeRunner::connect(cluster.addr(0), 1, &[]).await;
    api.launch("bounded", &[("image", "x")]).await.unwrap();
    assert_eq!(runner.assignment().await.timeout_seconds, 90);
}
