//! `rivet trigger create|list|delete` against a real `rivet dev`: the secret is printed by
//! `create` once, with the warning, and never by `list`.

use predicates::str::contains;

use crate::support::{Server, text};

const PIPELINE: &str = r#"return pipeline.define({
    name = "hooked",
    inputs = {
        ref = { type = "string", default = "" },
        target = { type = "string", default = "debug" },
    },
    stages = { { name = "build", script = function() end } },
})
"#;

#[test]
fn triggers_are_created_with_a_secret_shown_once_listed_without_it_and_deleted() {
    let server = Server::start();
    server.create("hooked.lua", PIPELINE);
    let args = [
        "trigger",
        "create",
        "--pipeline",
        "hooked",
        "--forge",
        "github",
        "--repository",
        "acme/app",
        "--event",
        "push",
        "--branch",
        "main",
        "--input",
        "target=release",
    ];
    let output = server.rivet().args(args).output().expect("rivet runs");
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("secret:") && stdout.contains("The secret is not shown again."), "{stdout}");
    let secret = stdout
        .lines()
        .find_map(|line| line.strip_prefix("secret:"))
        .map(|secret| secret.trim().to_owned())
        .expect("the secret line");
    assert_eq!(secret.len(), 64, "{stdout}");

    let created = server.json(&["trigger", "create", "--pipeline", "hooked", "--forge", "gitlab", "-r", "acme/lab"]);
    let json_secret = created["secret"].as_str().expect("the secret in JSON").to_owned();
    assert_eq!(json_secret.len(), 64);
    assert_ne!(json_secret, secret);

    let listed = server.json(&["trigger", "list"]);
    let triggers = listed.as_array().expect("a list");
    assert_eq!(triggers.len(), 2);
    assert_eq!(triggers[0]["branches"], serde_json::json!(["main"]));
    assert_eq!(triggers[0]["inputs"]["target"], "release");
    let text_list = server.rivet().args(["trigger", "list"]).output().expect("rivet runs");
    for shown in [listed.to_string(), text(&text_list.stdout)] {
        assert!(!shown.contains(&secret) && !shown.contains(&json_secret), "a listing shows a secret: {shown}");
    }

    let id = created["id"].as_str().expect("an id");
    server.rivet().args(["trigger", "delete", id]).assert().code(0).stdout(contains("deleted trigger"));
    assert_eq!(server.json(&["trigger", "list"]).as_array().map(Vec::len), Some(1));
    server.rivet().args(["trigger", "delete", id]).assert().code(8);
    server
        .rivet()
        .args(["trigger", "create", "--pipeline", "nope", "--forge", "gitea", "--repository", "a/b"])
        .assert()
        .code(8);
    server.rivet().args(["trigger", "create", "--pipeline", "hooked", "--forge", "svn", "-r", "a/b"]).assert().code(2);
}
