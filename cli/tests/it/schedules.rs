//! `rivet schedule create|list|pause|resume|delete` against a real `rivet dev`: every
//! problem of a refused schedule named, the next due time listed, ids taken by prefix.

use predicates::str::contains;

use crate::support::{Server, text};

const NIGHTLY: &str = r#"return pipeline.define({
    name = "nightly",
    inputs = { target = { type = "string", required = true } },
    stages = { { name = "report", script = function() end } },
})
"#;

#[test]
fn schedules_are_created_listed_paused_resumed_and_deleted() {
    let server = Server::start();
    server.create("nightly.lua", NIGHTLY);

    let output = server
        .rivet()
        .args(["schedule", "create", "nightly", "--cron", "0 25 * * *", "--tz", "Mars/Base"])
        .output()
        .expect("rivet runs");
    assert!(!output.status.success(), "a bad schedule was created");
    let stderr = text(&output.stderr);
    for problem in
        ["cron: invalid cron expression `0 25 * * *`: hour field `25`", "unknown time zone `Mars/Base`", "target"]
    {
        assert!(stderr.contains(problem), "`{problem}` is not named:\n{stderr}");
    }
    server
        .rivet()
        .args(["schedule", "create", "missing", "--cron", "@daily"])
        .assert()
        .failure()
        .stderr(contains("pipeline `missing` not found"));

    let created = server.json(&[
        "schedule",
        "create",
        "nightly",
        "--cron",
        "0 3 * * 1-5",
        "--tz",
        "Europe/Paris",
        "--missed",
        "run-once",
        "--input",
        "target=prod",
    ]);
    assert_eq!(created["time_zone"], "Europe/Paris");
    assert_eq!(created["missed"], "run-once");
    assert_eq!(created["inputs"]["target"], "prod");
    assert!(created["next_time"].is_string(), "{created:#}");
    let id = created["id"].as_str().expect("an id").to_owned();

    let listed = server.json(&["schedule", "list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed:#}");
    server.rivet().args(["schedule", "list"]).assert().success().stdout(contains("NEXT")).stdout(contains(&id));

    let paused = server.json(&["schedule", "pause", &id[..8]]);
    assert_eq!((paused["paused"].as_bool(), paused["next_time"].is_null()), (Some(true), true), "{paused:#}");
    server.rivet().args(["schedule", "list"]).assert().success().stdout(contains("paused"));
    let resumed = server.json(&["schedule", "resume", &id]);
    assert_eq!(resumed["paused"], false);

    server.rivet().args(["schedule", "delete", &id[..8]]).assert().success().stdout(format!("deleted schedule {id}\n"));
    server.rivet().args(["schedule", "list"]).assert().success().stderr(contains("no schedules"));
}
