//! Hostile pipeline scripts at creation time: each ends within its budget with an error
//! that names the limit, a full evaluation queue is refused at once, and the server goes
//! on serving, dispatching and finishing a normal job meanwhile.
//!
//! No stopwatch: "within its budget" is the error naming the limit that stopped it, "at
//! once" is a refusal arriving before any evaluation has ended, and "meanwhile" is the
//! normal job finishing while hostile evaluations are still running or queued.

use std::time::{Duration, Instant};

use rivet_proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::both_backends;
use crate::support::{Api, Backend, Cluster, FakeRunner, PATIENCE, pipeline_source};

/// The evaluation settings of these tests: a 1 s budget (the kill comes a second later),
/// three workers and three places in the queue.
const BUDGET_MS: u64 = 1_000;
const WORKERS: usize = 3;
const QUEUE: usize = 3;

/// Scripts that hang inside a C call today (the sandbox's hook never fires there) and
/// then spin in Lua: stopped by the worker's kill while the C call hangs, by the
/// sandbox's deadline once the call is bounded. Either way, the time budget.
const HANGS: [&str; 2] =
    [r#"local s = string.rep("", 2^50) while true do end"#, "pcall(table.move, {}, 1, 2^62, 2) while true do end"];

/// A script that allocates a MiB at a time until a memory limit stops it.
const HOG: &str = r#"local t, s = {}, string.rep("x", 1 << 20) for i = 1, 1e9 do t[i] = s .. i end"#;

/// How one hostile call ended.
#[derive(Debug)]
enum Ended {
    /// Refused as invalid, with this message naming the limit.
    Limited(String),
    /// Refused because the evaluation queue was full.
    QueueFull(String),
}

/// One hostile call: `ValidatePipeline` or `CreatePipeline`.
async fn hostile(mut api: Api, source: &str, create: bool) -> (Ended, Instant) {
    let file_name = "hostile.lua".to_owned();
    let outcome = if create {
        let request = pb::CreatePipelineRequest { source: source.to_owned(), file_name };
        match api.pipelines.create_pipeline(request).await {
            Ok(created) => panic!("a hostile script was stored: {created:?}"),
            Err(status) if status.code() == Code::ResourceExhausted => Ended::QueueFull(status.message().to_owned()),
            Err(status) => {
                assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
                let violations = status.get_details_bad_request().expect("bad request details").field_violations;
                assert_eq!(violations.len(), 1, "{violations:?}");
                assert!(violations[0].field.starts_with("hostile.lua:"), "{violations:?}");
                Ended::Limited(violations[0].description.clone())
            }
        }
    } else {
        let request = pb::ValidatePipelineRequest { source: source.to_owned(), file_name };
        match api.pipelines.validate_pipeline(request).await {
            Ok(response) => {
                let response = response.into_inner();
                assert!(!response.valid);
                assert_eq!(response.diagnostics.len(), 1, "{:?}", response.diagnostics);
                Ended::Limited(response.diagnostics[0].message.clone())
            }
            Err(status) if status.code() == Code::ResourceExhausted => Ended::QueueFull(status.message().to_owned()),
            Err(status) => panic!("unexpected status {status:?}"),
        }
    };
    (outcome, Instant::now())
}

async fn hostile_scripts_are_bounded(backend: Backend) {
    let cluster = Cluster::with(backend, 1, |config| {
        config.evaluation.time_budget_ms = BUDGET_MS;
        config.evaluation.workers = WORKERS;
        config.evaluation.queue = QUEUE;
    })
    .await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("steady", &[])).await;
    let mut runner = FakeRunner::connect(cluster.addr(0), 1, &[]).await;

    // Eight hostile calls at once, mixing both RPCs: three evaluate, three wait, and
    // the rest are refused unless a place frees up first.
    let scripts = [HANGS[0], HANGS[1], HOG, HANGS[0], HANGS[1], HOG, HANGS[0], HANGS[1]];
    let calls: Vec<_> = scripts
        .iter()
        .enumerate()
        .map(|(index, source)| {
            let (api, source) = (api.clone(), source.to_string());
            tokio::spawn(async move { (source.clone(), hostile(api, &source, index % 2 == 0).await) })
        })
        .collect();

    // Meanwhile (once every worker is busy with a hostile script) a normal job is
    // dispatched, runs and finishes on time.
    let evaluator = cluster.replicas[0].as_ref().expect("running").orchestrator.evaluator();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while evaluator.running() < WORKERS {
        assert!(tokio::time::Instant::now() < deadline, "the hostile scripts never occupied every worker");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let job = api.launch("steady", &[("image", "app")]).await.expect("launch during the storm");
    let assign = runner.assignment().await;
    runner.accept(&assign).await;
    runner.log(&assign, 1..=3).await;
    runner.finish(&assign, pb::JobState::Succeeded, 3).await;
    api.wait_for(&job.id, pb::JobState::Succeeded).await;
    // The hostile evaluations take two rounds of budgets (three run, three wait), so
    // they cannot all be over yet unless the job had to wait for them.
    assert!(
        calls.iter().any(|call| !call.is_finished()),
        "the normal job finished only after every hostile evaluation had ended"
    );

    let (mut limited, mut refusals, mut first_limited_end) = (0, Vec::new(), None::<Instant>);
    for call in calls {
        let (source, (ended, at)) = call.await.expect("joined");
        match ended {
            Ended::Limited(message) => {
                limited += 1;
                let limit = if source == HOG { "memory" } else { "time budget" };
                assert!(message.contains(limit), "`{source}` ended with `{message}`, not naming the {limit}");
                first_limited_end = Some(first_limited_end.map_or(at, |first| first.min(at)));
            }
            Ended::QueueFull(message) => {
                assert!(message.contains("the queue of 3 is full"), "{message}");
                refusals.push(at);
            }
        }
    }
    assert!(limited >= WORKERS + QUEUE, "{limited} evaluated, {} refused", refusals.len());
    assert_eq!(limited + refusals.len(), scripts.len());
    // A refusal does not wait for an evaluation: each came before the first one ended.
    let first_limited_end = first_limited_end.expect("some evaluations ran");
    assert!(refusals.iter().all(|refused| *refused < first_limited_end), "a refusal waited for an evaluation");

    // Nothing was stored, and the server serves at once afterwards.
    let list = api.pipelines.list_pipelines(pb::ListPipelinesRequest::default()).await.unwrap().into_inner();
    assert_eq!(list.pipelines.len(), 1, "only `steady`");
    assert_eq!((evaluator.running(), evaluator.queued()), (0, 0), "every evaluation slot is free again");
    api.create(&pipeline_source("after", &[])).await;
}
both_backends!(hostile_scripts_end_within_their_budget_while_a_job_runs, hostile_scripts_are_bounded);
