//! Two orchestrator replicas on one PostgreSQL and one Redis.

use rivet_proto::v1 as pb;

use crate::support::{Backend, Cluster, FakeRunner, pipeline_source, without_store_polling};

/// A job launched on replica A runs on a runner of replica B; its lines reach a follower on
/// A through Redis while it runs (no follower re-reads the store here, so a broken fan-out
/// fails this test), and a cancel through A reaches the runner on B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_launched_on_one_replica_runs_on_the_other_and_streams_back() {
    let cluster = Cluster::with(Backend::Postgres, 2, without_store_polling).await;
    let mut on_a = cluster.api(0).await;
    on_a.create(&pipeline_source("spread", &[])).await;
    let mut runner = FakeRunner::connect(cluster.addr(1), 1, &[]).await;
    let job = on_a.launch("spread", &[("image", "x")]).await.unwrap();
    let assign = runner.assignment().await;
    runner.accept(&assign).await;
    // Acked, so B has handled the accept and published its job event before A's follower
    // subscribes: no job event makes the follower re-read the store below.
    runner.log(&assign, 1..=50).await;
    runner.acked(&assign, 50).await;

    // The follower on A has subscribed once it has the stored lines; every later line can
    // only come from B through Redis.
    let mut follower = on_a.follower(&job.id, 1).await;
    follower.until(50).await;
    for batch in 1..5u64 {
        runner.log(&assign, batch * 50 + 1..=batch * 50 + 50).await;
    }
    runner.acked(&assign, 250).await;
    follower.until(250).await;
    assert_eq!(on_a.job(&job.id).await.state(), pb::JobState::Running, "the lines came while the job runs");

    // Cancel through A reaches the runner on B.
    let mut again = cluster.api(0).await;
    again.jobs.cancel_job(pb::CancelJobRequest { job_id: job.id.clone() }).await.unwrap();
    runner.expect("a cancel", |body| matches!(body, pb::connect_response::Body::CancelJob(_)).then_some(())).await;
    runner.finish(&assign, pb::JobState::Cancelled, 250).await;
    let lines = follower.end().await;
    assert_eq!(lines.iter().map(|l| l.sequence).collect::<Vec<_>>(), (1..=250).collect::<Vec<_>>());
    on_a.wait_for(&job.id, pb::JobState::Cancelled).await;

    let runners = on_a.runners.list_runners(pb::ListRunnersRequest { include_offline: false }).await.unwrap();
    let runners = runners.into_inner().runners;
    assert!(runners.iter().any(|r| r.id == runner.id.to_string() && r.online), "{runners:?}");
}
