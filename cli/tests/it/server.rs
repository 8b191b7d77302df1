//! The client commands against a real server: `rivet dev` (the embedded orchestrator on
//! SQLite with its own runner and podman), started for each test.

use predicates::prelude::*;
use predicates::str::contains;

use crate::support::{Server, repo_root, text};

/// Two required inputs, one with options, one bool with a default.
pub const INPUTS: &str = r#"return pipeline.define({
    name = "greeter",
    description = "Greets someone",
    inputs = {
        who = { type = "string", description = "Who to greet", required = true },
        count = { type = "number", description = "How many times", required = true },
        env = { type = "string", description = "Where", default = "dev", options = { "dev", "staging", "prod" } },
        loud = { type = "bool", description = "Shout", default = false },
    },
    stages = {
        {
            name = "greet",
            container = "localhost/rivet-test:latest",
            script = function()
                for i = 1, math.floor(input.number("count")) do
                    process.run({ cmd = "echo", args = { "hello " .. input.get("who") .. " in " .. input.get("env") } })
                end
            end,
        },
    },
})
"#;

/// A first stage that succeeds, then one whose command fails.
const FAILING: &str = r#"return pipeline.define({
    name = "failing",
    stages = {
        {
            name = "build",
            container = "localhost/rivet-test:latest",
            script = function() process.run({ cmd = "echo", args = { "building" } }) end,
        },
        {
            name = "test",
            container = "localhost/rivet-test:latest",
            script = function()
                local result = process.run({ cmd = "sh", args = { "-c", "echo broken >&2; exit 3" } })
                if result.exit_code ~= 0 then error("tests failed with exit code " .. result.exit_code) end
            end,
        },
    },
})
"#;

/// A job that runs until it is cancelled.
const SLOW: &str = r#"return pipeline.define({
    name = "slow",
    stages = {
        {
            name = "wait",
            container = "localhost/rivet-test:latest",
            script = function()
                log.info("waiting")
                process.run({ cmd = "sleep", args = { "60" } })
            end,
        },
    },
})
"#;

/// A pipeline with problems on two lines.
const INVALID: &str = r#"return pipeline.define({
    name = "broken",
    inputs = { jobs = { type = "number", default = "four" } },
    stages = { { name = "build", contianer = "x", script = function() end } },
})
"#;

fn hello() -> String {
    repo_root().join("examples/hello.lua").display().to_string()
}

#[test]
fn pipeline_create_list_show_delete() {
    let server = Server::start();
    server
        .rivet()
        .args(["pipeline", "create", &hello()])
        .assert()
        .code(0)
        .stdout(contains("created pipeline hello version 1"));
    let second = server.create("hello.lua", &std::fs::read_to_string(hello()).expect("examples/hello.lua"));
    assert_eq!(second["version"], 2);

    let list = server.json(&["pipeline", "list"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list:#}");
    assert_eq!(list[0]["name"], "hello");
    assert_eq!(list[0]["version"], 2);
    server.rivet().args(["pipeline", "list"]).assert().code(0).stdout(contains("NAME").and(contains("hello")));

    server.rivet().args(["pipeline", "show", "hello"]).assert().code(0).stdout(
        contains("version     2").and(contains("localhost/rivet-test:latest")).and(contains("inputs      none")),
    );
    let first = server.json(&["pipeline", "show", "hello", "--version", "1", "--source"]);
    assert_eq!(first["version"], 1);
    assert!(first["source"].as_str().is_some_and(|source| source.contains("pipeline.define")), "{first:#}");
    server
        .rivet()
        .args(["pipeline", "show", "hello", "--source"])
        .assert()
        .code(0)
        .stdout(contains("Hello from a Rivet stage"));

    // A unique prefix of the latest version's id names the pipeline.
    let id = second["id"].as_str().expect("an id").to_owned();
    let by_prefix = server.json(&["pipeline", "show", &id[..13]]);
    assert_eq!(by_prefix["id"], id.as_str());

    // Without a terminal, deleting needs --yes.
    server.rivet().args(["pipeline", "delete", "hello"]).assert().code(2).stderr(contains("--yes"));
    server
        .rivet()
        .args(["pipeline", "delete", "hello", "--yes"])
        .assert()
        .code(0)
        .stdout(contains("deleted pipeline hello (2 versions)"));
    server
        .rivet()
        .args(["pipeline", "show", "hello"])
        .assert()
        .code(8)
        .stderr(contains("not found").or(contains("no pipeline")).and(contains("rivet pipeline list")));
}

#[test]
fn an_invalid_pipeline_is_refused_with_every_problem() {
    let server = Server::start();
    let file = crate::support::write(server.home.path(), "broken.lua", INVALID);
    let assert = server.rivet().args(["pipeline", "create"]).arg(&file).assert().code(3);
    let stderr = text(&assert.get_output().stderr);
    assert!(stderr.contains("the pipeline is invalid: 2 problems"), "{stderr}");
    assert!(stderr.contains(":3: inputs.jobs.default: must be a number"), "{stderr}");
    assert!(stderr.contains(":4: stages[1].contianer: unknown field"), "{stderr}");
}

#[test]
fn launch_without_a_terminal_lists_every_bad_input() {
    let server = Server::start();
    server.create("greeter.lua", INPUTS);
    let assert = server
        .rivet()
        .args(["job", "launch", "greeter", "--no-input", "--input", "env=qa", "--input", "loud=maybe"])
        .assert()
        .code(7);
    let stderr = text(&assert.get_output().stderr);
    assert!(stderr.contains("4 invalid inputs"), "{stderr}");
    for expected in [
        "input `count`: is required",
        "input `who`: is required",
        "input `env`: `qa` is not one of the allowed values: dev, staging, prod",
        "input `loud`: `maybe` is not a bool",
    ] {
        assert!(stderr.contains(expected), "missing `{expected}` in:\n{stderr}");
    }
    // The same without --no-input: stdin is not a terminal, so nothing is asked.
    server.rivet().args(["job", "launch", "greeter"]).assert().code(7).stderr(contains("input `who`: is required"));
    assert_eq!(server.json(&["job", "list"]), serde_json::json!([]));
}

#[test]
fn launch_follow_prints_the_stage_and_its_output() {
    let server = Server::start();
    server.create("greeter.lua", INPUTS);
    let assert = server
        .rivet()
        .args([
            "job", "launch", "greeter", "--input", "who=Ada", "--input", "count=2", "--input", "env=prod", "--follow",
        ])
        .assert()
        .code(0);
    let stdout = text(&assert.get_output().stdout);
    assert!(stdout.starts_with("▶ stage greet\n"), "{stdout}");
    assert_eq!(stdout.matches("hello Ada in prod").count(), 2, "{stdout}");
    assert!(stdout.contains("✔ greet succeeded in"), "{stdout}");
    let stderr = text(&assert.get_output().stderr);
    assert!(stderr.contains("succeeded in"), "{stderr}");

    let jobs = server.json(&["job", "list"]);
    assert_eq!(jobs[0]["state"], "succeeded");
    assert_eq!(jobs[0]["inputs"], serde_json::json!({ "who": "Ada", "count": 2.0, "env": "prod", "loud": false }));
}

#[test]
fn hello_runs_and_its_log_can_be_read_again() {
    let server = Server::start();
    server.rivet().args(["pipeline", "create", &hello()]).assert().code(0);
    server.rivet().args(["job", "launch", "hello", "--follow"]).assert().code(0).stdout(contains("hello from rivet"));
    let id = server.json(&["job", "list"])[0]["id"].as_str().expect("a job id").to_owned();

    server
        .rivet()
        .args(["job", "logs", &id])
        .assert()
        .code(0)
        .stdout(contains("▶ stage hello").and(contains("Hello from a Rivet stage")).and(contains("hello from rivet")));
    let lines = server.rivet().args(["job", "logs", &id, "--output", "json"]).output().expect("rivet runs");
    let lines: Vec<serde_json::Value> = text(&lines.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}")))
        .collect();
    assert!(lines.iter().any(|line| line["text"] == "hello from rivet" && line["stage"] == "hello"), "{lines:?}");

    server
        .rivet()
        .args(["job", "show", &id])
        .assert()
        .code(0)
        .stdout(contains("succeeded").and(contains("hello v1")).and(contains("stages")));
    let job = server.json(&["job", "show", &id]);
    assert_eq!(job["stages"][0]["state"], "succeeded");
    assert!(job["stages"][0]["duration_ms"].is_u64(), "{job:#}");

    let runners = server.json(&["runner", "list"]);
    assert_eq!(runners[0]["name"], "rivet dev");
    assert_eq!(runners[0]["online"], true);
    server.rivet().args(["runner", "list"]).assert().code(0).stdout(contains("rivet dev").and(contains("online")));
}

#[test]
fn a_failing_job_exits_with_the_documented_code() {
    let server = Server::start();
    server.create("failing.lua", FAILING);
    let assert = server.rivet().args(["job", "launch", "failing", "--follow"]).assert().code(4);
    let stdout = text(&assert.get_output().stdout);
    assert!(stdout.contains("▶ stage build\nbuilding\n✔ build succeeded in"), "{stdout}");
    assert!(stdout.contains("▶ stage test\n"), "{stdout}");
    assert!(stdout.contains("✘ test failed after"), "{stdout}");
    let id = server.json(&["job", "list"])[0]["id"].as_str().expect("a job id").to_owned();

    server.rivet().args(["job", "logs", &id]).assert().code(4).stdout(contains("broken"));
    server.rivet().args(["job", "show", &id]).assert().code(0).stdout(
        contains("failed (script_error)").and(contains("tests failed with exit code 3")).and(contains("history")),
    );
    let failed = server.json(&["job", "list", "--state", "failed"]);
    assert_eq!(failed.as_array().map(Vec::len), Some(1));
    assert_eq!(server.json(&["job", "list", "--state", "succeeded"]), serde_json::json!([]));
    assert_eq!(server.json(&["job", "list", "--pipeline", "failing"]).as_array().map(Vec::len), Some(1));
}

#[test]
fn a_cancelled_job_exits_with_the_documented_code() {
    let server = Server::start();
    server.create("slow.lua", SLOW);
    let job = server.json(&["job", "launch", "slow", "--no-input", "--idempotency-key", "k-1"]);
    let id = job["id"].as_str().expect("a job id").to_owned();
    // A retried launch with the same key is the same job.
    let again = server.json(&["job", "launch", "slow", "--no-input", "--idempotency-key", "k-1"]);
    assert_eq!(again["id"], id.as_str());
    server.wait_for_state(&id, "running");
    server.rivet().args(["job", "cancel", &id]).assert().code(0).stdout(contains("cancel requested"));
    server.rivet().args(["job", "logs", &id, "--follow"]).assert().code(5).stdout(contains("waiting"));
    server.wait_for_state(&id, "cancelled");
    server.rivet().args(["job", "cancel", &id]).assert().code(11);
}

#[test]
fn job_ids_accept_unique_prefixes() {
    let server = Server::start();
    server.create("slow.lua", SLOW);
    let first = server.json(&["job", "launch", "slow", "--no-input"])["id"].as_str().expect("an id").to_owned();
    let second = server.json(&["job", "launch", "slow", "--no-input"])["id"].as_str().expect("an id").to_owned();
    let common = first.chars().zip(second.chars()).take_while(|(a, b)| a == b).count();
    assert!(common < 36);

    let unique = &first[..common + 1];
    assert_eq!(server.json(&["job", "show", unique])["id"], first.as_str());
    if common > 0 {
        let assert = server.rivet().args(["job", "show", &first[..common]]).assert().code(8);
        let stderr = text(&assert.get_output().stderr);
        assert!(stderr.contains("ambiguous") && stderr.contains(&first) && stderr.contains(&second), "{stderr}");
    }
    server
        .rivet()
        .args(["job", "show", "ffffffff"])
        .assert()
        .code(8)
        .stderr(contains("no job matches").and(contains("rivet job list")));
    server.rivet().args(["job", "cancel", unique]).assert().code(0);
    server.rivet().args(["job", "cancel", &second]).assert().code(0);
}

#[test]
fn a_server_with_tokens_wants_one() {
    let server = Server::start_with(&["--api-token", "s3cret-token"]);
    server
        .rivet()
        .args(["pipeline", "list"])
        .assert()
        .code(10)
        .stderr(contains("the server refused the credentials").and(contains("set RIVET_TOKEN")));
    server
        .rivet()
        .args(["--token", "wrong", "pipeline", "list"])
        .assert()
        .code(10)
        .stderr(contains("invalid API token"));
    server.rivet().env("RIVET_TOKEN", "s3cret-token").args(["pipeline", "create", &hello()]).assert().code(0);
    server.rivet().args(["--token", "s3cret-token", "pipeline", "list"]).assert().code(0).stdout(contains("hello"));
}

#[test]
fn runner_tokens_are_shown_once_and_a_revoked_runner_is_listed_revoked() {
    let server = Server::start();
    let token = server.json(&["runner", "token", "create", "--label", "pool=ci", "--expires", "1h", "--uses", "1"]);
    assert!(token["token"].as_str().is_some_and(|token| token.starts_with("rivet-reg_")), "{token}");
    assert_eq!((token["uses"].clone(), token["labels"]["pool"].clone()), (1.into(), "ci".into()));
    assert!(token["expire_time"].is_string(), "{token}");
    server
        .rivet()
        .args(["runner", "token", "create", "--expires", "soon"])
        .assert()
        .code(2)
        .stderr(contains("`soon` is not a duration like 30m, 12h or 7d"));

    // The embedded runner registered itself: wait until it is online.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let runner = loop {
        let runners = server.json(&["runner", "list"]);
        if runners[0]["state"] == "online" {
            break runners[0].clone();
        }
        assert!(std::time::Instant::now() < deadline, "the embedded runner never came online: {runners}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(runner["registered"], true);
    let id = runner["id"].as_str().expect("an id").to_owned();
    server.rivet().args(["runner", "revoke", &id]).assert().code(0).stderr(contains(format!("runner {id} revoked")));
    server.rivet().args(["runner", "list"]).assert().code(0).stdout(contains("revoked"));
    server
        .rivet()
        .args(["runner", "revoke", "not-a-uuid"])
        .assert()
        .code(1)
        .stderr(contains("runner_id: is not a UUID"));
}
