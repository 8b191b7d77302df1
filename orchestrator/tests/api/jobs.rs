//! JobService: launch with typed inputs, idempotency, queueing, cancel, transitions.

use rivet_proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::both_backends;
use crate::support::{Backend, Cluster, pipeline_source};

async fn bad_inputs(backend: Backend) {
    let cluster = Cluster::start(backend).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("typed", &[])).await;
    let status = api.launch("typed", &[("count", "many"), ("target", "fast"), ("nope", "1")]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields: Vec<String> =
        status.get_details_bad_request().expect("details").field_violations.into_iter().map(|v| v.field).collect();
    fields.sort();
    // One violation per bad input, the missing required one included.
    assert_eq!(fields, ["inputs.count", "inputs.image", "inputs.nope", "inputs.target"]);
    assert!(status.message().contains("`many` is not a number"), "{}", status.message());
    let jobs = api.jobs.list_jobs(pb::ListJobsRequest::default()).await.unwrap().into_inner();
    assert!(jobs.jobs.is_empty(), "a refused launch must not create a job");

    let job = api.launch("typed", &[("image", "app"), ("count", "2.5"), ("target", "release")]).await.unwrap();
    let count = job.inputs["count"].kind.clone().unwrap();
    assert_eq!(count, pb::input_value::Kind::NumberValue(2.5));
    assert_eq!(job.inputs["target"].kind.clone().unwrap(), pb::input_value::Kind::StringValue("release".into()));
}
both_backends!(bad_inputs_are_invalid_argument, bad_inputs);

async fn idempotent_launch(backend: Backend) {
    let cluster = Cluster::start(backend).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("idem", &[])).await;
    let request = || pb::LaunchJobRequest {
        pipeline: "idem".into(),
        inputs: [("image".to_owned(), "a".to_owned())].into_iter().collect(),
        idempotency_key: "deploy-42".into(),
    };
    let first = api.jobs.launch_job(request()).await.unwrap().into_inner().job.unwrap();
    let second = api.jobs.launch_job(request()).await.unwrap().into_inner().job.unwrap();
    assert_eq!(first.id, second.id);
    let jobs = api.jobs.list_jobs(pb::ListJobsRequest::default()).await.unwrap().into_inner();
    assert_eq!(jobs.jobs.len(), 1);
}
both_backends!(idempotency_key_makes_launch_safe_to_retry, idempotent_launch);

async fn queue_and_cancel(backend: Backend) {
    let cluster = Cluster::start(backend).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("gpu", &[("gpu", "a100")])).await;
    api.create(&pipeline_source("any", &[])).await;
    // A runner without the tag is connected: the job waits, visibly queued. A later job the
    // runner can take is dispatched past it, so the dispatcher has seen the first one.
    let mut runner = crate::support::FakeRunner::connect(cluster.addr(0), 2, &[("os", "linux")]).await;
    let job = api.launch("gpu", &[("image", "x")]).await.unwrap();
    let later = api.launch("any", &[("image", "x")]).await.unwrap();
    let assigned = runner.assignment().await;
    assert_eq!(assigned.assignment.expect("assignment").job_id, later.id, "only the job it can run");
    assert_eq!(api.job(&job.id).await.state(), pb::JobState::Queued);
    let queued = api
        .jobs
        .list_jobs(pb::ListJobsRequest { states: vec![pb::JobState::Queued as i32], ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queued.jobs.len(), 1);

    let cancelled = api.jobs.cancel_job(pb::CancelJobRequest { job_id: job.id.clone() }).await.unwrap();
    assert_eq!(cancelled.into_inner().job.unwrap().state(), pb::JobState::Cancelled);
    let again = api.jobs.cancel_job(pb::CancelJobRequest { job_id: job.id.clone() }).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);

    let job = api.job(&job.id).await;
    let states: Vec<pb::JobState> = job.transitions.iter().map(|t| t.state()).collect();
    assert_eq!(states, [pb::JobState::Queued, pb::JobState::Cancelled]);
    assert!(job.transitions.iter().all(|t| t.time.is_some()));

    let missing = api.jobs.get_job(pb::GetJobRequest { job_id: uuid::Uuid::new_v4().to_string() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let malformed = api.jobs.get_job(pb::GetJobRequest { job_id: "not-a-uuid".into() }).await.unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
}
both_backends!(unserved_jobs_wait_queued_and_cancel, queue_and_cancel);

#[tokio::test]
async fn list_jobs_pages_newest_first() {
    let cluster = Cluster::start(Backend::Sqlite).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("many", &[("never", "matched")])).await;
    let mut launched = Vec::new();
    for _ in 0..5 {
        launched.push(api.launch("many", &[("image", "x")]).await.unwrap().id);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = api
            .jobs
            .list_jobs(pb::ListJobsRequest { page_size: 2, page_token: token.clone(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.jobs.into_iter().map(|j| j.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    launched.reverse();
    assert_eq!(seen, launched);
}

async fn rerun(backend: Backend) {
    let cluster = Cluster::start(backend).await;
    let mut api = cluster.api(0).await;
    let first_version = api.create(&pipeline_source("again", &[])).await;
    let job = api.launch("again", &[("image", "app"), ("count", "3")]).await.unwrap();
    let origin = job.origin.clone().and_then(|origin| origin.kind);
    assert_eq!(origin, Some(pb::job_origin::Kind::Api(pb::job_origin::Api { caller: String::new() })));
    // A newer version does not change what a rerun runs: the same version, the same inputs.
    let newer = api.create(&format!("{}\n-- version 2", pipeline_source("again", &[]))).await;
    assert_ne!(newer.id, first_version.id);
    let request = pb::RerunJobRequest { job_id: job.id.clone() };
    let rerun = api.jobs.rerun_job(request).await.unwrap().into_inner().job.unwrap();
    assert_ne!(rerun.id, job.id);
    assert_eq!(rerun.pipeline_id, job.pipeline_id);
    assert_eq!(rerun.pipeline_version, job.pipeline_version);
    assert_eq!(rerun.inputs, job.inputs);
    let origin = rerun.origin.clone().and_then(|origin| origin.kind);
    assert_eq!(origin, Some(pb::job_origin::Kind::Rerun(pb::job_origin::Rerun { job_id: job.id.clone() })));
    assert_eq!(api.job(&rerun.id).await.origin, rerun.origin, "the origin is stored");

    let unknown = pb::RerunJobRequest { job_id: uuid::Uuid::new_v4().to_string() };
    assert_eq!(api.jobs.rerun_job(unknown).await.unwrap_err().code(), Code::NotFound);
    let malformed = pb::RerunJobRequest { job_id: "nope".into() };
    assert_eq!(api.jobs.rerun_job(malformed).await.unwrap_err().code(), Code::InvalidArgument);
}
both_backends!(a_rerun_runs_the_same_version_with_the_same_inputs_and_names_the_original, rerun);
