//! Whole pipelines: the repository's examples, stage failures and skips, outputs.

use rivet_core::{FailureReason, LogLevel, StageState};

use crate::support::{Env, TEST_IMAGE, example};

#[tokio::test]
async fn hello_example_runs_end_to_end() {
    let env = Env::new().await;
    let run = env.run(&example("hello.lua")).await;
    run.assert_succeeded();
    assert!(run.started("hello"));
    assert_eq!(run.stage("hello").0, StageState::Succeeded);
    assert!(run.logged(LogLevel::Info, "Hello from a Rivet stage"), "{:?}", run.texts());
    assert!(run.logged(LogLevel::Info, "hello from rivet"), "{:?}", run.texts());
    assert!(run.logs().iter().all(|line| line.stage == "hello"));
    run.assert_sequences();
    // The workspace is gone and no container is left.
    assert_eq!(std::fs::read_dir(env.workspace_root()).expect("workspace root").count(), 0);
    assert_eq!(env.containers_of(run.assignment.job_id).await, 0);
}

#[tokio::test]
async fn seed_example_with_a_missing_image_fails_with_image_pull() {
    let env = Env::new().await;
    // No registry is reachable; an image that exists nowhere stands for the seed's
    // `rust:latest` (which other tests tag locally).
    let missing = "localhost/rivet-missing:latest";
    let run = env.run(&example("build-and-test.lua").replace("rust:latest", missing)).await;
    run.assert_failed(FailureReason::ImagePull, missing);
    let (state, reason, message) = run.stage("build");
    assert_eq!((state, reason), (StageState::Failed, Some(FailureReason::ImagePull)));
    assert!(message.contains(&format!("image `{missing}`")), "{message}");
    // The stage after the failed one is reported, as skipped.
    let (state, _, message) = run.stage("test");
    assert_eq!(state, StageState::Skipped);
    assert!(message.contains("`build`"), "{message}");
    assert!(!run.started("test"));
}

#[tokio::test]
async fn seed_example_adapted_to_the_test_image_runs_and_skips_by_condition() {
    let env = Env::new().await;
    let source = example("build-and-test.lua").replace("rust:latest", TEST_IMAGE);

    let run = env.run(&source).await;
    run.assert_succeeded();
    assert_eq!(run.texts(), ["Building project...", "Using 4 parallel jobs", "Running tests..."]);
    assert_eq!(run.stage("test").0, StageState::Succeeded);

    let run = env.run_with(&source, &[("skip_tests", "true"), ("parallel_jobs", "8")], &[]).await;
    run.assert_succeeded();
    assert_eq!(run.texts(), ["Building project...", "Using 8 parallel jobs"]);
    let (state, reason, message) = run.stage("test");
    assert_eq!((state, reason), (StageState::Skipped, None));
    assert!(message.contains("condition"), "{message}");
    assert!(!run.started("test"));
}

#[tokio::test]
async fn outputs_pass_between_stages() {
    let env = Env::new().await;
    let source = example("release-outputs.lua");

    let run = env.run(&source).await;
    run.assert_succeeded();
    let outputs = &run.outcome.outputs;
    assert_eq!(outputs.get("version").map(String::as_str), Some("0.1.0-beta"));
    let checksum = outputs.get("checksum").expect("a checksum output");
    assert!(checksum.len() == 64 && checksum.chars().all(|c| c.is_ascii_hexdigit()), "{checksum}");
    assert!(run.logged(LogLevel::Info, &format!("dist/VERSION matches {checksum}")), "{:?}", run.texts());
    assert_eq!(run.stage("publish").0, StageState::Skipped);
    assert!(!outputs.contains_key("published"));

    let run = env.run_with(&source, &[("publish", "true"), ("channel", "stable")], &[]).await;
    run.assert_succeeded();
    assert_eq!(run.stage("publish").0, StageState::Succeeded);
    assert_eq!(run.outcome.outputs.get("published").map(String::as_str), Some("true"));
    assert!(run.logged(LogLevel::Warning, "publishing 0.1.0-stable to channel stable"), "{:?}", run.texts());
}

#[tokio::test]
async fn multi_target_example_nests_containers() {
    let env = Env::new().await;
    let run = env.run(&example("multi-target.lua")).await;
    run.assert_succeeded();
    let outputs = &run.outcome.outputs;
    assert_eq!(outputs.get("artifact-linux-amd64").map(String::as_str), Some("/workspace/out/linux-amd64/app.txt"));
    let checksums = outputs.get("checksums").expect("checksums");
    assert_eq!(checksums.lines().count(), 2, "{checksums}");
    assert!(checksums.contains("  /workspace/out/linux-arm64/app.txt"), "{checksums}");
}

#[tokio::test]
async fn inputs_and_logs_example_uses_levels_and_handles_a_failing_command() {
    let env = Env::new().await;
    let run = env.run_with(&example("inputs-and-logs.lua"), &[("ticket", "T-42"), ("repeat_count", "4")], &[]).await;
    run.assert_succeeded();
    for text in ["greeting = hello", "repeat_count = 4", "ticket = T-42", "verbose = false"] {
        assert!(run.logged(LogLevel::Debug, text), "{text}: {:?}", run.texts());
    }
    assert!(run.logged(LogLevel::Info, "working on ticket T-42"));
    for i in 1..=4 {
        assert!(run.logged(LogLevel::Info, &format!("hello #{i}")), "{:?}", run.texts());
    }
    // ls's stderr went to the log at debug level, and came back captured for the warning.
    let warning = run.logs().into_iter().find(|line| line.level == LogLevel::Warning).expect("a warning");
    assert!(warning.text.starts_with("ls exited 1: ") && warning.text.contains("/does-not-exist"), "{warning:?}");
    assert!(run.logs().iter().any(|line| line.level == LogLevel::Debug && line.text.contains("/does-not-exist")));
}

#[tokio::test]
async fn a_stage_that_raises_fails_the_job_and_skips_the_rest() {
    let env = Env::new().await;
    let source = r#"
return pipeline.define {
  name = "raises",
  stages = {
    { name = "first", script = function()
        log.info("before")
        error("boom")
      end },
    { name = "second", script = function() log.info("never") end },
  },
}
"#;
    let run = env.run(source).await;
    run.assert_failed(FailureReason::ScriptError, "stage `first`: test.lua:7: boom");
    assert_eq!(run.stage("first"), (StageState::Failed, Some(FailureReason::ScriptError), "test.lua:7: boom".into()));
    assert_eq!(run.stage("second").0, StageState::Skipped);
    assert_eq!(run.texts(), ["before"]);
}

#[tokio::test]
async fn a_failing_command_is_a_result_until_the_script_raises() {
    let env = Env::new().await;
    let source = r#"
return pipeline.define {
  name = "exit codes",
  stages = { { name = "run", script = function()
    local res = process.run({ cmd = "sh", args = { "-c", "echo to-stderr >&2; exit 3" } })
    log.info("exit " .. res.exit_code)
    local again = process.run({ cmd = "false" })
    if again.exit_code ~= 0 then
      error("false exited " .. again.exit_code)
    end
  end } },
}
"#;
    let run = env.run(source).await;
    assert!(run.logged(LogLevel::Warning, "to-stderr"), "{:?}", run.texts());
    assert!(run.logged(LogLevel::Info, "exit 3"), "{:?}", run.texts());
    run.assert_failed(FailureReason::ScriptError, "test.lua:9: false exited 1");
}

#[tokio::test]
async fn a_pipeline_that_does_not_load_fails_with_script_error() {
    let env = Env::new().await;
    let mut spec = env.spec(&example("hello.lua"), &[], &[]);
    spec.source = "return 42".to_owned();
    let run = env.run_spec(spec, Default::default()).await;
    run.assert_failed(FailureReason::ScriptError, "failed to load");
    assert!(run.events.is_empty(), "{:?}", run.events);
    assert_eq!(run.outcome.last_sequence, crate::support::FIRST_SEQUENCE - 1);
}

#[tokio::test]
async fn input_and_log_functions() {
    let env = Env::new().await;
    let source = r#"
return pipeline.define {
  name = "inputs",
  inputs = {
    name = { type = "string", default = "world" },
    count = { type = "number", default = 3 },
    ratio = { type = "number", default = 2.5 },
    fast = { type = "bool", default = true },
    extra = { type = "string" },
  },
  stages = { { name = "s", script = function()
    log.info("get: " .. input.get("name") .. " " .. input.get("count") .. " " .. input.get("fast"))
    log.info("missing: " .. tostring(input.get("extra")) .. " " .. input.get("extra", "fallback"))
    log.info("has: " .. tostring(input.has("name")) .. " " .. tostring(input.has("extra")))
    log.info("keys: " .. table.concat(input.keys(), ","))
    log.info("all: " .. input.all().count .. " " .. input.all().ratio)
    log.info("typed: " .. input.number("count") .. " " .. input.number("ratio") .. " " .. tostring(input.bool("fast")))
    local ok, err = pcall(input.require, "extra")
    log.debug("require: " .. tostring(err):match("[^\n]*"))
    ok, err = pcall(input.number, "name")
    log.debug("number: " .. tostring(err):match("[^\n]*"))
    log.warning("two\nlines\n")
    output.set("n", 42)
    output.set("f", 1.5)
    output.set("b", false)
  end } },
}
"#;
    let run = env.run(source).await;
    run.assert_succeeded();
    assert_eq!(
        run.texts(),
        [
            "get: world 3 true",
            "missing: nil fallback",
            "has: true false",
            "keys: count,fast,name,ratio",
            "all: 3 2.5",
            "typed: 3 2.5 true",
            "require: runtime error: input `extra` is not set",
            "number: runtime error: input `name` is a string, not a number",
            "two",
            "lines",
        ]
    );
    let outputs = &run.outcome.outputs;
    let get = |key: &str| outputs.get(key).map(String::as_str);
    assert_eq!((get("n"), get("f"), get("b")), (Some("42"), Some("1.5"), Some("false")));
}

/// A stage reads which job it is and what started it: here a trigger's push delivery,
/// then a rerun.
#[tokio::test]
async fn a_stage_reads_what_started_its_job() {
    let env = Env::new().await;
    let source = r#"return pipeline.define {
      name = "origin",
      stages = { { name = "s", script = function()
        local origin = job.origin()
        log.info("kind=" .. origin.kind .. " id=" .. job.id() .. " attempt=" .. job.attempt())
        if origin.kind == "trigger" then
          log.info("event=" .. origin.event .. " sha=" .. origin.sha .. " ref=" .. origin.ref
            .. " delivery=" .. origin.delivery_id .. " trigger=" .. origin.trigger_id)
        elseif origin.kind == "rerun" then
          log.info("of=" .. origin.of)
        end
        origin.kind = "changed"
        output.set("kind", job.origin().kind)
      end } },
    }"#;
    let mut spec = env.spec(source, &[], &[]);
    let trigger = uuid::Uuid::from_u128(42);
    spec.origin = rivet_core::JobOrigin::Trigger {
        trigger_id: trigger,
        delivery_id: "delivery-7".into(),
        event: "push".into(),
        sha: "9fceb02d0ae598e95dc970b74767f19372d61af8".into(),
        git_ref: "refs/heads/main".into(),
    };
    let job = spec.assignment.job_id;
    let run = env.run_spec(spec, tokio_util::sync::CancellationToken::new()).await;
    run.assert_succeeded();
    assert!(run.logged(LogLevel::Info, &format!("kind=trigger id={job} attempt=1")), "{:?}", run.texts());
    let expected = format!(
        "event=push sha=9fceb02d0ae598e95dc970b74767f19372d61af8 ref=refs/heads/main delivery=delivery-7 trigger={trigger}"
    );
    assert!(run.logged(LogLevel::Info, &expected), "{:?}", run.texts());
    assert_eq!(run.outcome.outputs.get("kind").map(String::as_str), Some("trigger"), "each call is a fresh table");

    let mut spec = env.spec(source, &[], &[]);
    let of = uuid::Uuid::from_u128(7);
    spec.origin = rivet_core::JobOrigin::Rerun { of };
    let run = env.run_spec(spec, tokio_util::sync::CancellationToken::new()).await;
    run.assert_succeeded();
    assert!(run.logged(LogLevel::Info, &format!("of={of}")), "{:?}", run.texts());
}
