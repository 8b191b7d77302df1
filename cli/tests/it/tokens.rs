//! `rivet token create|list|revoke` against a real `rivet dev` started with a bootstrap
//! token, and what each role may then do.

use predicates::prelude::*;
use predicates::str::contains;

use crate::support::{Server, repo_root, text};

const BOOTSTRAP: &str = "bootstrap-s3cret";

#[test]
fn tokens_are_created_listed_used_and_revoked() {
    let server = Server::start_with(&["--api-token", BOOTSTRAP]);
    let admin = || {
        let mut command = server.rivet();
        command.env("RIVET_TOKEN", BOOTSTRAP);
        command
    };

    // Created: the token alone on stdout, the warning on stderr.
    let output =
        admin().args(["token", "create", "--role", "viewer", "--name", "dashboard"]).output().expect("rivet runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let viewer = text(&output.stdout).trim().to_owned();
    assert!(viewer.starts_with("rivet_") && !viewer.contains(char::is_whitespace), "{viewer}");
    let warning = text(&output.stderr);
    assert!(warning.contains("with role viewer (does not expire)"), "{warning}");
    assert!(warning.contains("It is not shown again: store it now."), "{warning}");

    let output = admin()
        .args(["token", "create", "--role", "operator", "--name", "ci", "--expires", "30d", "--output", "json"])
        .output()
        .expect("rivet runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let operator: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(operator["role"], "operator");
    assert_eq!(operator["status"], "active");
    assert!(operator["expire_time"].is_string(), "{operator:#}");
    assert!(operator["token"].as_str().expect("the token").starts_with("rivet_"));

    // Listed, without secrets.
    let output = admin().args(["token", "list", "--output", "json"]).output().expect("rivet runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let listing = text(&output.stdout);
    assert!(!listing.contains(&viewer) && !listing.contains(operator["token"].as_str().unwrap()), "{listing}");
    let tokens: serde_json::Value = serde_json::from_str(&listing).expect("JSON");
    let names: Vec<&str> = tokens.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dashboard", "ci"]);
    let viewer_id = tokens[0]["id"].as_str().unwrap().to_owned();

    // The viewer reads, but may not write or manage tokens.
    let hello = repo_root().join("examples/hello.lua").display().to_string();
    server.rivet().env("RIVET_TOKEN", &viewer).args(["pipeline", "list"]).assert().code(0);
    server
        .rivet()
        .env("RIVET_TOKEN", &viewer)
        .args(["pipeline", "create", &hello])
        .assert()
        .code(10)
        .stderr(contains("not allowed: /rivet.v1.PipelineService/CreatePipeline needs the admin role"));
    server
        .rivet()
        .env("RIVET_TOKEN", &viewer)
        .args(["token", "list"])
        .assert()
        .code(10)
        .stderr(contains("TokenService/ListTokens needs the admin role").and(contains("has the viewer role")));

    // Revoked by a unique prefix of its id: refused from then on.
    admin()
        .args(["token", "revoke", &viewer_id[..8]])
        .assert()
        .code(0)
        .stdout(contains(format!("revoked API token {viewer_id} (dashboard, role viewer)")));
    server
        .rivet()
        .env("RIVET_TOKEN", &viewer)
        .args(["pipeline", "list"])
        .assert()
        .code(10)
        .stderr(contains(format!("API token {viewer_id} was revoked at")));
    admin()
        .args(["token", "list"])
        .assert()
        .code(0)
        .stdout(contains("ROLE").and(contains("revoked")).and(contains("active")).and(contains("operator")));
    admin().args(["token", "revoke", "ffffffff"]).assert().code(8).stderr(contains("no token matches `ffffffff`"));
    admin().args(["token", "create", "--role", "root"]).assert().code(2).stderr(contains("invalid value 'root'"));
}
