//! Every size a pipeline controls is bounded: lines (cut while read, with a visible
//! marker), the job's whole log, messages, outputs, and what the runner spills to disk.

use std::sync::Arc;

use rivet_core::text::{MAX_LOG_LINE_BYTES, MAX_MESSAGE_BYTES, truncate};
use rivet_core::{FailureReason, JobState, LogLevel, StageState};
use rivet_runner::agent::Outbox;
use rivet_runner::executor::{LINE_OVERHEAD, run_job};
use rivet_runner::job::JobEvent;
use tokio_util::sync::CancellationToken;

use crate::support::{Env, FIRST_SEQUENCE};

/// 50 MB without a newline, as the issue's attacker prints it.
const FLOOD: usize = 50 * 1024 * 1024;

#[tokio::test]
async fn long_lines_messages_and_outputs_are_cut_with_a_marker() {
    let env = Env::new().await;
    let source = format!(
        r#"return pipeline.define {{
  name = "big",
  stages = {{
    {{ name = "flood", script = function()
        process.run({{ cmd = "sh", args = {{ "-c", "head -c {FLOOD} /dev/zero | tr '\\0' x; echo; echo short" }} }})
        log.info(string.rep("y", 9 * 1024 * 1024))
        output.set("big", string.rep("z", 100000))
      end }},
    {{ name = "fail", script = function() error(string.rep("e", 100000)) end }},
  }},
}}"#
    );
    let run = env.run(&source).await;
    assert_eq!(run.outcome.state, JobState::Failed, "{:#?}", run.outcome.message.len());
    let texts = run.texts();
    assert_eq!(texts.len(), 3, "one cut line per long line: {:?}", texts.iter().map(|t| t.len()).collect::<Vec<_>>());
    assert_eq!(texts[0], truncate(&"x".repeat(FLOOD), MAX_LOG_LINE_BYTES), "the process's line");
    assert!(texts[0].len() <= MAX_LOG_LINE_BYTES && texts[0].ends_with(" bytes]"));
    assert_eq!(texts[1], "short", "the line after the long one is whole");
    let y = truncate(&"y".repeat(9 * 1024 * 1024), MAX_LOG_LINE_BYTES).into_owned();
    assert_eq!(texts[2], y, "the log.info line");
    run.assert_sequences();

    let big = &run.outcome.outputs["big"];
    assert_eq!(*big, truncate(&"z".repeat(100_000), MAX_MESSAGE_BYTES));
    let (state, _, message) = run.stage("fail");
    assert_eq!(state, StageState::Failed);
    assert!(message.len() <= MAX_MESSAGE_BYTES && message.ends_with(" bytes]"), "{}", message.len());
    assert!(run.outcome.message.len() <= MAX_MESSAGE_BYTES, "{}", run.outcome.message.len());
    assert!(run.outcome.message.starts_with("stage `fail`: test.lua:"), "{}", &run.outcome.message[..40]);
}

#[tokio::test]
async fn the_log_budget_drops_lines_after_one_notice_and_the_job_goes_on() {
    const BUDGET: u64 = 100_000;
    let mut env = Env::new().await;
    env.config.max_job_log_bytes = BUDGET;
    let source = r#"return pipeline.define {
  name = "chatty",
  stages = {
    { name = "s", script = function()
        process.run({ cmd = "seq", args = { "1", "100000" } })
        log.info("dropped too")
        output.set("after", "ran")
      end },
    { name = "t", script = function() log.error("and this") end },
  },
}"#;
    let run = env.run(source).await;
    run.assert_succeeded();
    assert_eq!(run.outcome.outputs.get("after").map(String::as_str), Some("ran"), "the job went on");
    assert_eq!(run.stage("t").0, StageState::Succeeded);

    // Exactly the lines that fit the budget (text, stage name and the per-line overhead).
    let mut fit = 0;
    let mut used = 0;
    while used + (fit + 1).to_string().len() + 1 + LINE_OVERHEAD <= BUDGET as usize {
        fit += 1;
        used += fit.to_string().len() + 1 + LINE_OVERHEAD;
    }
    let logs = run.logs();
    assert_eq!(logs.len(), fit + 1, "the lines that fit, then one notice");
    for (i, line) in logs[..fit].iter().enumerate() {
        assert_eq!(line.text, (i + 1).to_string());
    }
    let notice = logs[fit];
    assert_eq!(notice.level, LogLevel::Warning);
    assert_eq!(
        notice.text,
        "the job's log reached its 100000 bytes budget (max_job_log_bytes): later lines are dropped"
    );
    run.assert_sequences();
}

#[tokio::test]
async fn a_job_past_the_spill_limit_fails_naming_it_without_a_gap() {
    let env = Env::new().await;
    let spill = tempfile::tempdir().expect("a spill directory");
    // Nothing acknowledges lines here, so they all stay: 10 KB in memory, 200 KB on disk.
    let outbox = Outbox::new(spill.path().to_owned(), 10_000, 200_000);
    let spec = env.spec(
        r#"return pipeline.define { name = "spill", stages = {
    { name = "s", script = function() process.run({ cmd = "seq", args = { "1", "1000000" } }) end },
    { name = "t", script = function() end },
} }"#,
        &[],
        &[],
    );
    let job = spec.assignment.job_id;
    outbox.open(spec.assignment, FIRST_SEQUENCE);
    let outcome = run_job(spec, &env.config, &env.podman, Arc::new(outbox.clone()), CancellationToken::new()).await;
    assert_eq!(outcome.state, JobState::Failed, "{outcome:#?}");
    assert_eq!(outcome.failure_reason, Some(FailureReason::Internal));
    assert!(
        outcome.message.contains(
            "the job's unacknowledged log exceeds the 200000 bytes spill limit of this runner (max_log_spill_bytes)"
        ),
        "{}",
        outcome.message
    );
    assert_eq!(outbox.produced(job), Some(outcome.last_sequence), "every counted line is kept, none after");
    assert!(outcome.last_sequence > FIRST_SEQUENCE + 100, "{}", outcome.last_sequence);
    let stage_events = outbox.stage_events(job);
    let skipped = stage_events.iter().any(
        |event| matches!(event, JobEvent::StageFinished { stage, state: StageState::Skipped, .. } if stage == "t"),
    );
    assert!(skipped, "{stage_events:#?}");
}
