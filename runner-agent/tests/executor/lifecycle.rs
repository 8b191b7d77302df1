//! Stopping jobs (cancel, stage and job timeouts), the Lua time budget, and removing what a
//! crashed runner left behind.

use std::sync::Arc;
use std::time::Duration;

use podman_api::opts::ContainerCreateOpts;
use rivet_core::{FailureReason, JobState, StageState};
use rivet_runner::executor::{LABEL_RUNNER, cleanup_leftovers, run_job};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::support::{Collector, Env, TEST_IMAGE, wait_for};

const SLEEPER: &str = r#"
return pipeline.define {
  name = "sleeper",
  stages = {
    { name = "sleep", container = "localhost/rivet-test:latest", timeout = 600, script = function()
        process.run({ cmd = "sh", args = { "-c", "echo started; exec sleep 60" } })
        log.info("after the sleep")
      end },
    { name = "later", script = function() end },
  },
}
"#;

#[tokio::test]
async fn cancel_stops_a_running_process_within_seconds() {
    let env = Env::new().await;
    let spec = env.spec(SLEEPER, &[], &[]);
    let assignment = spec.assignment;
    let job = assignment.job_id;
    let sink = Arc::new(Collector::default());
    let cancel = CancellationToken::new();
    let running = {
        let (config, podman, sink, cancel) = (env.config.clone(), env.podman.clone(), sink.clone(), cancel.clone());
        tokio::spawn(async move { run_job(spec, &config, &podman, sink, cancel).await })
    };
    wait_for(Duration::from_secs(30), || sink.logged("started")).await;
    let cancelled_at = Instant::now();
    cancel.cancel();
    let outcome = running.await.expect("the job task");
    let took = cancelled_at.elapsed();

    assert_eq!(outcome.state, JobState::Cancelled, "{outcome:#?}");
    assert_eq!(outcome.failure_reason, Some(FailureReason::Cancelled));
    // Stopped, not waited for: the process would sleep 60 s.
    assert!(took < Duration::from_secs(60), "cancelling waited for the process: {took:?}");
    assert_eq!(env.containers_of(job).await, 0, "a container of the job is left");
    let run = crate::support::Run { assignment, outcome, events: sink.events() };
    assert_eq!(run.stage("sleep").0, StageState::Cancelled);
    assert_eq!(run.stage("later").0, StageState::Skipped);
    assert!(!run.texts().contains(&"after the sleep"));
}

#[tokio::test]
async fn a_stage_that_runs_too_long_times_out() {
    let env = Env::new().await;
    let source = SLEEPER.replace("timeout = 600", "timeout = 1");
    let started = Instant::now();
    let run = env.run(&source).await;
    // Stopped, not waited for: the process would sleep 60 s.
    assert!(started.elapsed() < Duration::from_secs(60), "the timeout waited for the process: {:?}", started.elapsed());
    assert_eq!(run.outcome.state, JobState::TimedOut, "{:#?}", run.outcome);
    assert_eq!(run.outcome.failure_reason, Some(FailureReason::Timeout));
    let (state, reason, message) = run.stage("sleep");
    assert_eq!((state, reason), (StageState::TimedOut, Some(FailureReason::Timeout)));
    assert!(message.contains("timed out after 1s"), "{message}");
    assert_eq!(env.containers_of(run.assignment.job_id).await, 0);
}

#[tokio::test]
async fn a_job_that_runs_too_long_times_out() {
    let env = Env::new().await;
    let mut spec = env.spec(SLEEPER, &[], &[]);
    spec.timeout = Some(Duration::from_secs(2));
    let run = env.run_spec(spec, CancellationToken::new()).await;
    assert_eq!(run.outcome.state, JobState::TimedOut, "{:#?}", run.outcome);
    assert_eq!(run.outcome.failure_reason, Some(FailureReason::Timeout));
    assert!(run.outcome.message.contains("the job timed out after 2s"), "{}", run.outcome.message);
    assert_eq!(run.stage("later").0, StageState::Skipped);
}

#[tokio::test]
async fn the_lua_budget_counts_lua_time_not_process_time() {
    let env = Env::new().await;
    // The budget is 2 s (see support); the process alone takes 3 s.
    let waits = format!(
        r#"return pipeline.define {{ name = "w", stages = {{ {{ name = "s", container = "{TEST_IMAGE}", script = function()
            process.run({{ cmd = "sleep", args = {{ "3" }} }})
        end }} }} }}"#
    );
    env.run(&waits).await.assert_succeeded();

    let spins = r#"return pipeline.define { name = "spin", stages = { { name = "s", script = function()
        while true do pcall(function() while true do end end) end
    end } } }"#;
    // It spins forever: that it ends at all, naming the budget, is the proof.
    let run = env.run(spins).await;
    run.assert_failed(FailureReason::ScriptError, "exceeded its time budget");
}

#[tokio::test]
async fn cleanup_leftovers_removes_labelled_containers_and_workspaces() {
    let env = Env::new().await;
    let created = env
        .podman
        .containers()
        .create(
            &ContainerCreateOpts::builder()
                .image(TEST_IMAGE)
                .command(["true"])
                .labels([(LABEL_RUNNER, env.config.instance.as_str())])
                .build(),
        )
        .await
        .expect("create a leftover container");
    let other = env
        .podman
        .containers()
        .create(&ContainerCreateOpts::builder().image(TEST_IMAGE).command(["true"]).build())
        .await
        .expect("create an unrelated container");
    let root = env.workspace_root();
    let leftover = root.join(format!("{}-3", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(leftover.join("deep/dir")).expect("a leftover workspace");
    std::fs::write(root.join("keep-me"), "not a workspace").expect("an unrelated file");

    let report = cleanup_leftovers(&env.podman, &env.config).await.expect("cleanup");
    assert_eq!((report.containers, report.workspaces), (1, 1));
    assert!(!env.podman.containers().get(created.id.as_str()).exists().await.expect("exists"));
    assert!(!leftover.exists());
    assert!(root.join("keep-me").exists());

    let other = env.podman.containers().get(other.id.as_str());
    assert!(other.exists().await.expect("exists"), "an unlabelled container was removed");
    other.delete(&podman_api::opts::ContainerDeleteOpts::builder().force(true).build()).await.expect("delete");
}
