//! `process.run` and `container.with`: images, working directories, environment, capture,
//! secrets and large output.

use rivet_core::{FailureReason, LogLevel, StageState};

use crate::support::{Env, NOSHELL_IMAGE, TEST_IMAGE};

/// A one-stage pipeline in `image` whose script body is `body`.
fn stage(image: &str, body: &str) -> String {
    format!(
        "return pipeline.define {{\n  name = \"t\",\n  stages = {{ {{ name = \"s\", container = \"{image}\", script = function()\n{body}\nend }} }},\n}}\n"
    )
}

#[tokio::test]
async fn nested_containers_run_processes_in_the_innermost() {
    let env = Env::new().await;
    let body = format!(
        r#"
        process.run({{ cmd = "sh", args = {{ "-c", "echo outer has a shell" }} }})
        local a, b = container.with("{NOSHELL_IMAGE}", function()
            local ok, err = pcall(process.run, {{ cmd = "sh", args = {{ "-c", "true" }} }})
            log.info("inner sh ok=" .. tostring(ok) .. " " .. tostring(err))
            process.run({{ cmd = "/bin/busybox", args = {{ "echo", "inner busybox" }} }})
            local again = container.with("{TEST_IMAGE}", function()
                return process.run({{ cmd = "sh", args = {{ "-c", "echo innermost" }}, capture_stdout = true }}).stdout
            end)
            return again, 2
        end)
        log.info("returned " .. a:gsub("\n", "") .. " " .. b)
        process.run({{ cmd = "sh", args = {{ "-c", "echo outer again" }} }})
        "#
    );
    let run = env.run(&stage(TEST_IMAGE, &body)).await;
    run.assert_succeeded();
    let texts = run.texts();
    assert!(run.logged(LogLevel::Info, "outer has a shell"), "{texts:?}");
    let inner = texts.iter().find(|text| text.starts_with("inner sh ok=")).expect("the inner sh attempt");
    assert!(inner.starts_with("inner sh ok=false") && inner.contains("cannot start `sh`"), "{inner}");
    assert!(inner.contains(NOSHELL_IMAGE), "{inner}");
    assert!(run.logged(LogLevel::Info, "inner busybox"), "{texts:?}");
    assert!(run.logged(LogLevel::Info, "returned innermost 2"), "{texts:?}");
    assert!(run.logged(LogLevel::Info, "outer again"), "{texts:?}");
}

#[tokio::test]
async fn a_process_runs_in_an_image_without_a_shell() {
    let env = Env::new().await;
    let body = r#"
        local res = process.run({ cmd = "/bin/busybox", args = { "echo", "ok" }, capture_stdout = true })
        output.set("said", res.stdout)
        output.set("code", res.exit_code)
    "#;
    let run = env.run(&stage(NOSHELL_IMAGE, body)).await;
    run.assert_succeeded();
    assert!(run.logged(LogLevel::Info, "ok"));
    assert_eq!(run.outcome.outputs.get("said").map(String::as_str), Some("ok\n"));
    assert_eq!(run.outcome.outputs.get("code").map(String::as_str), Some("0"));
}

#[tokio::test]
async fn cwd_env_and_capture() {
    let env = Env::new().await;
    let body = r#"
        process.run({ cmd = "mkdir", args = { "-p", "sub/dir" } })
        local function sh(script, opts)
            opts = opts or {}
            opts.cmd, opts.args = "sh", { "-c", script }
            return process.run(opts)
        end
        output.set("pwd", sh("pwd", { cwd = "sub/dir", capture_stdout = true }).stdout)
        output.set("abs", sh("pwd", { cwd = "/workspace/sub", capture_stdout = true }).stdout)
        output.set("default", sh("pwd", { capture_stdout = true }).stdout)
        output.set("env", sh('echo "$GREETING $COUNT"', { env = { GREETING = "hi there", COUNT = 3 }, capture_stdout = true }).stdout)
        local both = sh("echo out; echo err >&2", { capture_stdout = true, capture_stderr = true, stdout_level = "debug", stderr_level = "error" })
        output.set("out", both.stdout)
        output.set("err", both.stderr)
        local quiet = sh("echo not captured")
        output.set("quiet", "[" .. quiet.stdout .. quiet.stderr .. "]")
        -- The workspace is shared by the stage's processes.
        sh("echo data > sub/dir/file.txt")
        output.set("file", sh("cat file.txt", { cwd = "sub/dir", capture_stdout = true }).stdout)
    "#;
    let run = env.run(&stage(TEST_IMAGE, body)).await;
    run.assert_succeeded();
    let outputs = &run.outcome.outputs;
    let get = |key: &str| outputs.get(key).map(String::as_str).unwrap_or("<unset>");
    assert_eq!(get("pwd"), "/workspace/sub/dir\n");
    assert_eq!(get("abs"), "/workspace/sub\n");
    assert_eq!(get("default"), "/workspace\n");
    assert_eq!(get("env"), "hi there 3\n");
    assert_eq!((get("out"), get("err")), ("out\n", "err\n"));
    assert!(run.logged(LogLevel::Debug, "out") && run.logged(LogLevel::Error, "err"), "{:?}", run.texts());
    assert_eq!(get("quiet"), "[]");
    assert!(run.logged(LogLevel::Info, "not captured"));
    assert_eq!(get("file"), "data\n");
}

#[tokio::test]
async fn cwd_outside_the_workspace_is_refused() {
    let env = Env::new().await;
    let body = r#"
        for _, cwd in ipairs({ "../etc", "/etc", "a/../../x", "missing" }) do
            local ok, err = pcall(process.run, { cmd = "true", cwd = cwd })
            log.info(cwd .. " -> " .. tostring(ok) .. ": " .. tostring(err))
        end
        process.run({ cmd = "true", cwd = "/workspace/../etc" })
    "#;
    let run = env.run(&stage(TEST_IMAGE, body)).await;
    let texts = run.texts();
    for (cwd, part) in [
        ("../etc", "leaves the workspace"),
        ("/etc", "outside the workspace"),
        ("a/../../x", "leaves the workspace"),
        ("missing", "not a directory"),
    ] {
        let line = texts.iter().find(|text| text.starts_with(&format!("{cwd} -> "))).expect("a line per cwd");
        assert!(line.contains("false") && line.contains(part), "{line}");
    }
    run.assert_failed(FailureReason::ScriptError, "process.run: cwd `/workspace/../etc` leaves the workspace");
    assert!(run.outcome.message.contains("test.lua:9:"), "{}", run.outcome.message);
}

#[tokio::test]
async fn bad_options_are_named() {
    let env = Env::new().await;
    let body = r#"
        local cases = {
            { cmd = "true", argz = {} },
            { args = { "x" } },
            { cmd = "true", stdout_level = "loud" },
            { cmd = "true", args = { {} } },
            { cmd = "true", env = { A = {} } },
        }
        for i, opts in ipairs(cases) do
            local ok, err = pcall(process.run, opts)
            log.info(i .. ": " .. tostring(err))
        end
    "#;
    let run = env.run(&stage(TEST_IMAGE, body)).await;
    run.assert_succeeded();
    let texts = run.texts().join("\n");
    for part in [
        "1: runtime error: process.run: unknown option `argz`",
        "2: runtime error: process.run: `cmd` is required",
        "3: runtime error: process.run: `stdout_level` must be one of \"debug\", \"info\", \"warning\", \"error\", got \"loud\"",
        "4: runtime error: process.run: `args[1]` must be a string, got a table",
        "5: runtime error: process.run: `env.A` must be a string, got a table",
    ] {
        assert!(texts.contains(part), "{part}\n{texts}");
    }
}

#[tokio::test]
async fn secrets_are_masked_everywhere() {
    let env = Env::new().await;
    let body = r#"
        log.info("token is s3cr3t-Value, twice: s3cr3t-Value")
        process.run({ cmd = "echo", args = { "echoed s3cr3t-Value" } })
        process.run({ cmd = "sh", args = { "-c", "echo 'to stderr s3cr3t-Value' >&2" } })
        output.set("leak", "s3cr3t-Value")
        error("failed with s3cr3t-Value")
    "#;
    let run = env.run_with(&stage(TEST_IMAGE, body), &[], &[("token", "s3cr3t-Value")]).await;
    assert_eq!(run.texts(), ["token is ***, twice: ***", "echoed ***", "to stderr ***"], "every line is masked");
    let (_, _, message) = run.stage("s");
    assert!(message.ends_with("failed with ***"), "{message}");
    assert!(!run.outcome.message.contains("s3cr3t"), "{}", run.outcome.message);
    assert_eq!(run.outcome.outputs.get("leak").map(String::as_str), Some("***"));
}

#[tokio::test]
async fn every_line_of_a_large_output_arrives_once_in_order() {
    const LINES: usize = 200_000;
    let env = Env::new().await;
    let body = format!(r#"process.run({{ cmd = "seq", args = {{ "1", "{LINES}" }} }})"#);
    let run = env.run(&stage(TEST_IMAGE, &body)).await;
    run.assert_succeeded();
    let texts = run.texts();
    assert_eq!(texts.len(), LINES);
    for (i, text) in texts.iter().enumerate() {
        assert_eq!(text.parse::<usize>().ok(), Some(i + 1), "line {i}");
    }
    run.assert_sequences();
}

#[tokio::test]
async fn a_missing_program_is_an_error_naming_it() {
    let env = Env::new().await;
    let run = env.run(&stage(TEST_IMAGE, r#"process.run({ cmd = "no-such-program" })"#)).await;
    run.assert_failed(
        FailureReason::ScriptError,
        "test.lua:4: cannot start `no-such-program` in image `localhost/rivet-test:latest`: \
         exec: \"no-such-program\": executable file not found in $PATH",
    );
    assert_eq!(run.stage("s").0, StageState::Failed);
}

#[tokio::test]
async fn host_calls_are_refused_inside_coroutines() {
    let env = Env::new().await;
    let body = r#"
        local co = coroutine.wrap(function() return process.run({ cmd = "true" }) end)
        local ok, err = pcall(co)
        log.info("process.run: " .. tostring(ok) .. " " .. tostring(err))
        ok, err = pcall(coroutine.wrap(function() container.with("localhost/rivet-noshell:latest", print) end))
        log.info("container.with: " .. tostring(ok) .. " " .. tostring(err))
        -- Plain coroutines still work.
        local gen = coroutine.wrap(function() coroutine.yield(1) coroutine.yield(2) end)
        log.info("yields " .. gen() .. gen())
    "#;
    let run = env.run(&stage(TEST_IMAGE, body)).await;
    run.assert_succeeded();
    let texts = run.texts();
    for function in ["process.run", "container.with"] {
        let line = texts.iter().find(|text| text.starts_with(&format!("{function}: "))).expect("a line");
        assert!(line.starts_with(&format!("{function}: false")) && line.contains("inside a coroutine"), "{line}");
    }
    assert!(texts.contains(&"yields 12"), "{texts:?}");
}
