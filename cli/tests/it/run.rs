//! `rivet run FILE`: a pipeline run on an embedded server and runner, end to end.

use predicates::prelude::*;
use predicates::str::contains;

use crate::support::{ensure_test_image, repo_root, rivet, temp_dir, text, write};

#[test]
fn hello_prints_its_line_and_exits_0() {
    ensure_test_image();
    let assert = rivet().arg("run").arg(repo_root().join("examples/hello.lua")).env("NO_COLOR", "1").assert().code(0);
    let stdout = text(&assert.get_output().stdout);
    assert!(stdout.contains("▶ stage hello\n"), "{stdout}");
    assert!(stdout.contains("hello from rivet\n"), "{stdout}");
    assert!(stdout.contains("✔ hello succeeded in"), "{stdout}");
}

#[test]
fn a_failing_pipeline_exits_4() {
    ensure_test_image();
    let dir = temp_dir();
    let file = write(
        dir.path(),
        "fail.lua",
        r#"return pipeline.define({
    name = "fail",
    stages = { {
        name = "only",
        container = "localhost/rivet-test:latest",
        script = function()
            if process.run({ cmd = "false" }).exit_code ~= 0 then error("false failed") end
        end,
    } },
})
"#,
    );
    rivet().arg("run").arg(&file).assert().code(4).stdout(contains("✘ only failed")).stderr(contains("failed"));
}

#[test]
fn inputs_are_given_and_missing_ones_listed() {
    ensure_test_image();
    let dir = temp_dir();
    let file = write(dir.path(), "greeter.lua", crate::server::INPUTS);
    rivet()
        .arg("run")
        .arg(&file)
        .args(["--input", "who=Lin", "--input", "count=1"])
        .assert()
        .code(0)
        .stdout(contains("hello Lin in dev"));
    rivet()
        .arg("run")
        .arg(&file)
        .arg("--no-input")
        .assert()
        .code(7)
        .stderr(contains("input `count`: is required").and(contains("input `who`: is required")));
}

#[test]
fn a_script_stuck_in_a_c_call_exits_3_within_the_time_budget() {
    let dir = temp_dir();
    let (name, source) = crate::check::HANGING[0];
    let file = write(dir.path(), name, source);
    // The time budget, not this test's outer bound, stopped it: the error names it.
    rivet()
        .arg("run")
        .arg(&file)
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(3)
        .stderr(contains("rep.lua").and(contains("time budget")));
}

#[test]
fn an_invalid_pipeline_exits_3_before_anything_starts() {
    let dir = temp_dir();
    let file = write(dir.path(), "bad.lua", "return pipeline.define({ name = 'x' })\n");
    rivet().arg("run").arg(&file).assert().code(3).stderr(contains("bad.lua").and(contains("stages")));
}

#[test]
fn secrets_come_from_the_environment_or_a_file_and_are_masked() {
    ensure_test_image();
    let dir = temp_dir();
    let file = write(dir.path(), "deploy.lua", crate::secrets::DEPLOY);
    let value = "run-secret-from-env-5521";
    let assert = rivet()
        .arg("run")
        .arg(&file)
        .args(["--secret", "DEPLOY_TOKEN"])
        .env("DEPLOY_TOKEN", value)
        .env("NO_COLOR", "1")
        .assert()
        .code(0);
    let stdout = text(&assert.get_output().stdout);
    assert!(stdout.contains("token is ***"), "{stdout}");
    assert!(!stdout.contains(value), "the value was printed: {stdout}");

    let secrets = write(dir.path(), "secrets.env", "# for the deploy pipeline\n\nDEPLOY_TOKEN=from-file-7730\n");
    let assert = rivet().arg("run").arg(&file).arg("--secret-file").arg(&secrets).env("NO_COLOR", "1").assert().code(0);
    let stdout = text(&assert.get_output().stdout);
    assert!(stdout.contains("token is ***") && !stdout.contains("from-file-7730"), "{stdout}");

    // A missing variable and a malformed file are refused before anything starts, and
    // never quote a value.
    rivet()
        .arg("run")
        .arg(&file)
        .args(["--secret", "DEPLOY_TOKEN"])
        .env_remove("DEPLOY_TOKEN")
        .assert()
        .code(2)
        .stderr(contains("--secret DEPLOY_TOKEN: the environment variable DEPLOY_TOKEN is not set"));
    let bad = write(dir.path(), "bad.env", "DEPLOY_TOKEN=fine\nno-equals-sign-here-secret\n");
    rivet()
        .arg("run")
        .arg(&file)
        .arg("--secret-file")
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(contains("bad.env:2: expected NAME=VALUE").and(contains("no-equals-sign").not()));
    // Without the secret, the pipeline is refused naming it.
    rivet().arg("run").arg(&file).assert().code(3).stderr(contains("secret `DEPLOY_TOKEN` is not set"));
}
