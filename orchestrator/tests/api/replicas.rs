//! Two orchestrator replicas on one PostgreSQL and one Redis.

use std::time::Duration;

use rivet_proto::v1 as pb;

use crate::support::{Backend, Cluster, FakeRunner, pipeline_source};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_launched_on_one_replica_runs_on_the_other_and_streams_back() {
    let cluster = Cluster::with(Backend::Postgres, 2, |_| {}).await;
    let mut on_a = cluster.api(0).await;
    on_a.create(&pipeline_source("spread", &[])).await;
    let mut runner = FakeRunner::connect(cluster.addr(1), 1, &[]).await;
    let job = on_a.launch("spread", &[("image", "x")]).await.unwrap();
    let assign = runner.assignment().await;
    runner.accept(&assign).await;

    let mut follower_api = on_a.clone();
    let job_id = job.id.clone();
    let follower = tokio::spawn(async move { follower_api.follow(&job_id, 1).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    for batch in 0..5u64 {
        runner.log(&assign, batch * 50 + 1..=batch * 50 + 50).await;
    }
    runner.acked(&assign, 250).await;

    // Cancel through A reaches the runner on B.
    let mut again = cluster.api(0).await;
    again.jobs.cancel_job(pb::CancelJobRequest { job_id: job.id.clone() }).await.unwrap();
    runner.expect("a cancel", |body| matches!(body, pb::connect_response::Body::CancelJob(_)).then_some(())).await;
    runner.finish(&assign, pb::JobState::Cancelled, 250).await;
    let lines = follower.await.unwrap();
    assert_eq!(lines.iter().map(|l| l.sequence).collect::<Vec<_>>(), (1..=250).collect::<Vec<_>>());
    on_a.wait_for(&job.id, pb::JobState::Cancelled).await;

    let runners = on_a.runners.list_runners(pb::ListRunnersRequest { include_offline: false }).await.unwrap();
    let runners = runners.into_inner().runners;
    assert!(runners.iter().any(|r| r.id == runner.id.to_string() && r.online), "{runners:?}");
}
