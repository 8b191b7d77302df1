//! `rivet pipeline check`: every example passes, and bad input gets a clear error, an exit
//! code of 3, and every problem at once.

use std::time::Duration;

use predicates::prelude::*;
use predicates::str::contains;
use serde_json::Value;

use crate::support::{lua_files, repo_root, rivet, temp_dir, text, write};

/// A pipeline with three problems on three lines: a default of the wrong type, a
/// misspelled stage field, and a duplicate stage name.
const INVALID: &str = r#"return pipeline.define({
    name = "broken",
    inputs = {
        jobs = { type = "number", default = "four" },
    },
    stages = {
        {
            name = "build",
            contianer = "rust:latest",
            script = function() end,
        },
        { name = "build", script = function() end },
    },
})
"#;

/// Its diagnostics, as `rivet pipeline check invalid.lua` prints them on stderr.
const INVALID_STDERR: &str = "\
invalid.lua:4: inputs.jobs.default: must be a number like the input's type, got string
invalid.lua:9: stages[1].contianer: unknown field `contianer`: did you mean `container`?
invalid.lua:12: stages[2].name: duplicate stage name `build`: stage names must be unique
invalid.lua: invalid, 3 errors
";

const VALID: &str = r#"return pipeline.define({
    name = "tiny",
    stages = { { name = "only", script = function() end } },
})
"#;

/// Runs `rivet pipeline check --output json ARGS...` in `dir` and parses its stdout.
fn check_json(dir: &std::path::Path, files: &[&str]) -> (i32, Value) {
    let output = rivet().current_dir(dir).args(["pipeline", "check", "--output", "json"]).args(files).output();
    let output = output.expect("rivet runs");
    let json = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("stdout is not JSON ({err}):\n{}", text(&output.stdout)));
    (output.status.code().expect("rivet exits with a code"), json)
}

#[test]
fn every_example_is_valid_and_named_in_the_summary() {
    let examples = lua_files(&repo_root().join("examples"));
    assert!(!examples.is_empty(), "examples/ has no .lua file");
    for example in examples {
        let file = example.strip_prefix(repo_root()).expect("example under the repository").to_owned();
        let file = file.to_str().expect("UTF-8 path");

        let (code, json) = check_json(&repo_root(), &[file]);
        assert_eq!(code, 0, "{file}: {json:#}");
        let name = json[0]["pipeline"]["name"].as_str().unwrap_or_else(|| panic!("{file}: no name in {json:#}"));
        assert!(!name.is_empty(), "{file}: empty pipeline name");

        rivet()
            .current_dir(repo_root())
            .args(["pipeline", "check", file])
            .assert()
            .code(0)
            .stdout(contains(format!("{file}: valid pipeline \"{name}\"")))
            .stderr("");
    }
}

#[test]
fn seed_example_summary_lists_inputs_runner_and_stages() {
    rivet()
        .current_dir(repo_root())
        .args(["pipeline", "check", "examples/build-and-test.lua"])
        .assert()
        .code(0)
        .stdout(
            "examples/build-and-test.lua: valid pipeline \"Build and Test\"\n\
         \x20 inputs: branch (string, default main), parallel_jobs (number, default 4, one of 1|2|4|8|16), \
         skip_tests (bool, default false)\n\
         \x20 runner: os=linux, arch=x86_64\n\
         \x20 stages: build [rust:latest] → test [rust:latest] (conditional)\n",
        );
}

#[test]
fn invalid_pipeline_reports_every_error_as_file_line_field_message() {
    let dir = temp_dir();
    write(dir.path(), "invalid.lua", INVALID);
    rivet()
        .current_dir(dir.path())
        .args(["pipeline", "check", "invalid.lua"])
        .assert()
        .code(3)
        .stdout("")
        .stderr(INVALID_STDERR);
}

#[test]
fn json_output_is_an_array_of_reports() {
    let dir = temp_dir();
    write(dir.path(), "invalid.lua", INVALID);
    write(dir.path(), "valid.lua", VALID);
    let (code, json) = check_json(dir.path(), &["invalid.lua", "valid.lua"]);
    assert_eq!(code, 3);

    let reports = json.as_array().expect("a JSON array");
    assert_eq!(reports.len(), 2);
    let (invalid, valid) = (&reports[0], &reports[1]);

    assert_eq!(invalid["file"], "invalid.lua");
    assert_eq!(invalid["valid"], false);
    let errors: Vec<(u64, &str, &str)> = invalid["errors"]
        .as_array()
        .expect("errors is an array")
        .iter()
        .map(|error| {
            let line = error["line"].as_u64().expect("line is a number");
            let field = error["field"].as_str().expect("field is a string");
            let message = error["message"].as_str().expect("message is a string");
            (line, field, message)
        })
        .collect();
    assert_eq!(
        errors,
        [
            (4, "inputs.jobs.default", "must be a number like the input's type, got string"),
            (9, "stages[1].contianer", "unknown field `contianer`: did you mean `container`?"),
            (12, "stages[2].name", "duplicate stage name `build`: stage names must be unique"),
        ]
    );

    assert_eq!(valid["file"], "valid.lua");
    assert_eq!(valid["valid"], true);
    assert_eq!(valid["errors"], serde_json::json!([]));
    assert_eq!(valid["pipeline"]["name"], "tiny");
    assert_eq!(valid["pipeline"]["stages"][0]["name"], "only");
}

#[test]
fn one_invalid_of_two_exits_3_and_counts_the_valid_ones() {
    let dir = temp_dir();
    write(dir.path(), "invalid.lua", INVALID);
    write(dir.path(), "valid.lua", VALID);
    rivet()
        .current_dir(dir.path())
        .args(["pipeline", "check", "valid.lua", "invalid.lua"])
        .assert()
        .code(3)
        .stdout(contains("valid.lua: valid pipeline \"tiny\"").and(contains("1 of 2 pipelines valid\n")))
        .stderr(INVALID_STDERR);
}

#[test]
fn missing_file_is_a_clear_error() {
    let dir = temp_dir();
    let assert = rivet().current_dir(dir.path()).args(["pipeline", "check", "nope.lua"]).assert().failure();
    assert.stderr(contains("nope.lua").and(contains("cannot read file")).and(contains("No such file")));
}

#[test]
fn syntax_error_names_the_line() {
    let dir = temp_dir();
    write(dir.path(), "syntax.lua", "return pipeline.define({\n  name = \"x\"\n  stages = {},\n})\n");
    rivet()
        .current_dir(dir.path())
        .args(["pipeline", "check", "syntax.lua"])
        .assert()
        .code(3)
        .stderr(predicate::str::is_match(r"(?m)^syntax\.lua:3: syntax error: ").expect("valid regex"));
}

#[test]
fn endless_loop_is_stopped_by_the_time_budget() {
    let dir = temp_dir();
    write(dir.path(), "loop.lua", "while true do end\n");
    rivet()
        .current_dir(dir.path())
        .args(["pipeline", "check", "loop.lua"])
        // A generous guard: the budget is seconds; without it a regression would hang the suite.
        .timeout(Duration::from_secs(60))
        .assert()
        .code(3)
        .stderr(contains("loop.lua:1: ").and(contains("time budget")));
}

/// Scripts that hang inside one C call today, where the sandbox's hook never fires, then
/// spin in Lua: the evaluation worker is killed at the time budget plus a grace (or, once
/// the C call is bounded, the sandbox stops the spin at the budget).
pub const HANGING: [(&str, &str); 2] = [
    ("rep.lua", "local s = string.rep(\"\", 2^50)\nwhile true do end\n"),
    ("move.lua", "pcall(table.move, {}, 1, 2^62, 2)\nwhile true do end\n"),
];

#[test]
fn scripts_stuck_in_c_calls_end_within_the_time_budget() {
    let dir = temp_dir();
    for (name, source) in HANGING {
        write(dir.path(), name, source);
    }
    // The time budget, not this test's outer bound, stopped them: the errors name it.
    let assert = rivet()
        .current_dir(dir.path())
        .args(["pipeline", "check", "rep.lua", "move.lua"])
        .timeout(Duration::from_secs(60))
        .assert()
        .code(3);
    let stderr = text(&assert.get_output().stderr);
    for (name, _) in HANGING {
        let named = stderr.lines().any(|line| line.starts_with(&format!("{name}:")) && line.contains("time budget"));
        assert!(named, "no time budget error for {name}:\n{stderr}");
    }
}

/// The largest script accepted is 1 MiB; a valid pipeline padded with a comment to that
/// size passes, and one byte more is refused before Lua runs.
#[test]
fn script_over_1_mib_is_refused() {
    const LIMIT: usize = 1024 * 1024;
    let padded = |size: usize| {
        let mut source = VALID.to_owned();
        source.push_str("-- ");
        source.push_str(&"x".repeat(size - source.len() - 1));
        source.push('\n');
        assert_eq!(source.len(), size);
        source
    };
    let dir = temp_dir();
    write(dir.path(), "limit.lua", padded(LIMIT));
    write(dir.path(), "over.lua", padded(LIMIT + 1));

    rivet().current_dir(dir.path()).args(["pipeline", "check", "limit.lua"]).assert().code(0);
    rivet()
        .current_dir(dir.path())
        .args(["pipeline", "check", "over.lua"])
        .assert()
        .code(3)
        .stderr(contains("over.lua:0: file is 1048577 bytes; pipeline scripts may be at most 1048576"));
}
