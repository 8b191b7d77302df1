//! Push dispatch over runner streams, fenced leases, and live logs.

use std::collections::HashMap;
use std::sync::Arc;

use rivet_proto::v1::{self as pb, connect_request, connect_response};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::both_backends;
use crate::support::{Backend, Cluster, FakeRunner, PATIENCE, pipeline_source, without_store_polling};

async fn pushed_job_and_live_logs(backend: Backend) {
    let cluster = Cluster::with(backend, 1, without_store_polling).await;
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
    // The first lines come before the follower: once they are acked, the session has
    // handled the accept and published its job event, so no job event can make the
    // follower re-read the store while the later lines stream.
    runner.log(&assign, 1..=100).await;
    runner.acked(&assign, 100).await;
    api.wait_for(&job.id, pb::JobState::Running).await;

    // The follower has subscribed once it has the stored lines: every later line can only
    // reach it live, since it never polls the store here.
    let mut follower = api.follower(&job.id, 0).await;
    follower.until(100).await;
    for batch in 1..10u64 {
        runner.log(&assign, batch * 100 + 1..=batch * 100 + 100).await;
    }
    runner.acked(&assign, 1000).await;
    // Every line reached the follower while the job still runs: its runner has not even
    // finished the stage.
    follower.until(1000).await;
    assert_eq!(api.job(&job.id).await.state(), pb::JobState::Running);
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

    let lines = follower.end().await;
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

/// What one runner of the race received.
#[derive(Default)]
struct Received {
    assignments: Vec<pb::AssignJob>,
    refusals: Vec<pb::Refused>,
}

/// Two idle runners, each on its own replica (both on the one replica of the embedded
/// mode), accept every job they are given; one job is launched. For two lease TTLs, long
/// enough for a job whose lease was lost to be handed on, exactly one runner is ever
/// assigned the job, its lease holds, and the job runs once.
async fn two_runners_race(backend: Backend) {
    let cluster = Cluster::with(backend, 2, |_| {}).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("race", &[])).await;
    let last = cluster.addrs.len() - 1;
    let runners =
        [FakeRunner::connect(cluster.addr(0), 1, &[]).await, FakeRunner::connect(cluster.addr(last), 1, &[]).await];
    let job = api.launch("race", &[("image", "x")]).await.unwrap();
    let until = tokio::time::Instant::now() + 2 * cluster.lease_ttl();
    let racers = runners.map(|mut runner| {
        tokio::spawn(async move {
            let mut received = Received::default();
            loop {
                let left = until.saturating_duration_since(tokio::time::Instant::now());
                match runner.next_within(left).await {
                    Some(connect_response::Body::AssignJob(assign)) => {
                        runner.accept(&assign).await;
                        received.assignments.push(assign);
                    }
                    Some(connect_response::Body::Refused(refused)) => received.refusals.push(refused),
                    Some(_) => {}
                    None => {
                        assert!(tokio::time::Instant::now() >= until, "the stream of runner {} ended", runner.id);
                        return (runner, received);
                    }
                }
            }
        })
    });
    let mut holders = Vec::new();
    for racer in racers {
        let (runner, received) = racer.await.unwrap();
        assert!(received.refusals.is_empty(), "runner {} was refused: {:?}", runner.id, received.refusals);
        if !received.assignments.is_empty() {
            holders.push((runner, received.assignments));
        }
    }
    assert_eq!(holders.len(), 1, "exactly one runner must ever get the job");
    let (runner, assignments) = holders.pop().unwrap();
    assert_eq!(assignments.len(), 1, "the job was handed out more than once: {assignments:?}");
    let assign = &assignments[0];
    assert_eq!(assign.assignment.as_ref().unwrap().job_id, job.id);
    assert_eq!(api.job(&job.id).await.state(), pb::JobState::Running, "the lease held for the whole race");

    runner.finish(assign, pb::JobState::Succeeded, 0).await;
    let done = api.wait_for(&job.id, pb::JobState::Succeeded).await;
    assert_eq!(done.attempt, 1);
    let states: Vec<pb::JobState> = done.transitions.iter().map(|t| t.state()).collect();
    assert_eq!(states, [pb::JobState::Queued, pb::JobState::Assigned, pb::JobState::Running, pb::JobState::Succeeded]);
}
both_backends!(two_runners_race_for_one_job, two_runners_race);

async fn many_jobs_many_runners(backend: Backend) {
    let (jobs, runners) = if backend == Backend::Postgres { (1000, 10) } else { (200, 4) };
    let cluster = Cluster::start(backend).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("bulk", &[])).await;
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for _ in 0..runners {
        let mut runner = FakeRunner::connect(cluster.addr(0), 4, &[]).await;
        let (runs, stop) = (runs.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let body = tokio::select! {
                    _ = stop.cancelled() => return,
                    body = runner.next_within(PATIENCE) => body,
                };
                match body {
                    Some(connect_response::Body::AssignJob(assign)) => {
                        runner.accept(&assign).await;
                        runner.finish(&assign, pb::JobState::Succeeded, 0).await;
                        let id = assign.assignment.unwrap().job_id;
                        *runs.lock().await.entry(id).or_default() += 1;
                    }
                    Some(_) => {}
                    // Idle for a while, or the stream ended: a job it missed fails below.
                    None => return,
                }
            }
        }));
    }
    let mut launched = Vec::new();
    for _ in 0..jobs {
        launched.push(api.launch("bulk", &[("image", "x")]).await.unwrap().id);
    }
    // Every job ends succeeded, on its first attempt, through exactly the states of one run.
    for id in &launched {
        let done = api.wait_for(id, pb::JobState::Succeeded).await;
        assert_eq!(done.attempt, 1, "job {id} was assigned more than once");
        let states: Vec<pb::JobState> = done.transitions.iter().map(|t| t.state()).collect();
        assert_eq!(
            states,
            [pb::JobState::Queued, pb::JobState::Assigned, pb::JobState::Running, pb::JobState::Succeeded],
            "job {id}"
        );
    }
    stop.cancel();
    for task in tasks {
        task.await.unwrap();
    }
    let runs = runs.lock().await;
    assert_eq!(runs.len(), jobs, "every job must run");
    assert!(runs.values().all(|count| *count == 1), "a job ran twice");
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
