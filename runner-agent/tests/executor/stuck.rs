//! A script stuck inside one C call (`fault.block`, from the `fault-injection` feature the
//! tests turn on) cannot notice a stop: the supervisor ends the job anyway, on time, and
//! the runner goes on to run the next job. "On time" is a logical bound, not a timing
//! threshold: the job ends, and the next one runs, before the blocked call would return.

use std::sync::Arc;
use std::time::Duration;

use rivet_core::{FailureReason, JobState, StageState};
use rivet_runner::executor::run_job;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::support::{Collector, Env, Run, wait_for};

/// How long the stuck call blocks: a job that waited for it would take this long. The
/// supervisor's own bound (deadline + 1 s grace + 3 s unwinding + 1 s) is far below.
const BLOCK: Duration = Duration::from_secs(60);

/// A pipeline whose first stage blocks its thread for [`BLOCK`] inside one call.
fn stuck(timeout: u64) -> String {
    format!(
        r#"return pipeline.define {{
  name = "stuck",
  stages = {{
    {{ name = "block", timeout = {timeout}, script = function()
        log.info("blocking")
        fault.block({block})
        log.info("after the block")
      end }},
    {{ name = "later", script = function() log.info("later ran") end }},
  }},
}}"#,
        block = BLOCK.as_secs()
    )
}

const QUICK: &str = r#"return pipeline.define { name = "quick", stages = { { name = "s", script = function()
    process.run({ cmd = "echo", args = { "still serving" } })
end } } }"#;

/// The stuck stage ended once with `state`, the later one was skipped once, and nothing the
/// abandoned thread did afterwards was reported.
fn assert_abandoned(run: &Run, state: StageState, message_part: &str) {
    let (stage_state, _, message) = run.stage("block");
    assert_eq!(stage_state, state, "{message}");
    assert!(message.contains(message_part) && message.contains("was abandoned"), "{message}");
    let (later, _, message) = run.stage("later");
    assert_eq!(later, StageState::Skipped, "{message}");
    assert!(!run.started("later"));
    assert_eq!(run.texts(), ["blocking"], "only what ran before the block is logged");
    run.assert_sequences();
}

/// The same executor configuration runs another job to success at once.
async fn assert_still_serving(env: &Env) {
    let started = Instant::now();
    let run = env.run(QUICK).await;
    run.assert_succeeded();
    assert!(run.logged(rivet_core::LogLevel::Info, "still serving"), "{:?}", run.texts());
    assert!(started.elapsed() < BLOCK, "the next job waited for the blocked call: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_stage_timeout_ends_a_script_stuck_in_a_c_call() {
    let env = Env::new().await;
    let started = Instant::now();
    let run = env.run(&stuck(2)).await;
    let took = started.elapsed();
    assert!(took < BLOCK, "the job waited for the blocked call: {took:?}");
    assert_eq!(run.outcome.state, JobState::TimedOut, "{:#?}", run.outcome);
    assert_eq!(run.outcome.failure_reason, Some(FailureReason::Timeout));
    assert!(run.outcome.message.starts_with("stage `block`: timed out after 2s"), "{}", run.outcome.message);
    assert_abandoned(&run, StageState::TimedOut, "timed out after 2s");
    assert_still_serving(&env).await;
}

#[tokio::test]
async fn a_job_timeout_ends_a_script_stuck_in_a_c_call() {
    let env = Env::new().await;
    let mut spec = env.spec(&stuck(600), &[], &[]);
    spec.timeout = Some(Duration::from_secs(2));
    let started = Instant::now();
    let run = env.run_spec(spec, CancellationToken::new()).await;
    let took = started.elapsed();
    assert!(took < BLOCK, "the job waited for the blocked call: {took:?}");
    assert_eq!(run.outcome.state, JobState::TimedOut, "{:#?}", run.outcome);
    assert!(run.outcome.message.contains("the job timed out after 2s"), "{}", run.outcome.message);
    assert_abandoned(&run, StageState::TimedOut, "the job timed out after 2s");
    let (_, _, message) = run.stage("later");
    assert_eq!(message, "not run: stage `block` did not succeed");
    assert_still_serving(&env).await;
}

#[tokio::test]
async fn a_cancel_ends_a_script_stuck_in_a_c_call() {
    let env = Env::new().await;
    let spec = env.spec(&stuck(600), &[], &[]);
    let assignment = spec.assignment;
    let sink = Arc::new(Collector::default());
    let cancel = CancellationToken::new();
    let running = {
        let (config, podman, sink, cancel) = (env.config.clone(), env.podman.clone(), sink.clone(), cancel.clone());
        tokio::spawn(async move { run_job(spec, &config, &podman, sink, cancel).await })
    };
    wait_for(Duration::from_secs(30), || sink.logged("blocking")).await;
    let cancelled_at = Instant::now();
    cancel.cancel();
    let outcome = running.await.expect("the job task");
    let took = cancelled_at.elapsed();
    assert!(took < BLOCK, "the cancel waited for the blocked call: {took:?}");
    assert_eq!(outcome.state, JobState::Cancelled, "{outcome:#?}");
    assert_eq!(outcome.failure_reason, Some(FailureReason::Cancelled));
    let run = Run { assignment, outcome, events: sink.events() };
    assert_abandoned(&run, StageState::Cancelled, "the job was cancelled");
    let (_, _, message) = run.stage("later");
    assert_eq!(message, "not run: the job was cancelled");
    assert_still_serving(&env).await;
}
