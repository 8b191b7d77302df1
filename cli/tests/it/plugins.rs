//! `rivet plugin publish|list` against a real `rivet dev`: the example plugins publish, a
//! pipeline naming one is pinned to it, and a version published again with other content is
//! refused.

use crate::support::{Server, repo_root, text};

#[test]
fn plugins_are_published_listed_and_pinned() {
    let server = Server::start();
    let git = repo_root().join("examples/plugins/git.lua");
    let output = server
        .rivet()
        .args(["plugin", "publish"])
        .arg(&git)
        .args(["--name", "git", "--version", "1.0.0"])
        .output()
        .expect("rivet runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let sha256 = rivet_core::plugin::sha256(&std::fs::read_to_string(&git).expect("git.lua"));
    assert_eq!(text(&output.stdout).trim(), format!("published plugin git@1.0.0 (sha256:{sha256})"));

    let notify = repo_root().join("examples/plugins/notify.lua");
    let output = server
        .rivet()
        .args(["plugin", "publish"])
        .arg(&notify)
        .args(["--name", "git", "--version", "1.0.0"])
        .output()
        .expect("rivet runs");
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("already published with other content"), "{}", text(&output.stderr));

    let output = server.rivet().args(["plugin", "list", "--output", "json"]).output().expect("rivet runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(listed[0]["name"], "git");
    assert_eq!(listed[0]["sha256"], sha256.as_str());

    let output = server
        .rivet()
        .args(["pipeline", "create"])
        .arg(repo_root().join("examples/git-build.lua"))
        .output()
        .expect("rivet runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[test]
fn a_pipeline_shows_its_pins_and_http_scope() {
    let server = Server::start();
    let source = "return {}";
    let dir = crate::support::temp_dir();
    let plugin = crate::support::write(dir.path(), "notify.lua", source);
    let output = server
        .rivet()
        .args(["plugin", "publish"])
        .arg(&plugin)
        .args(["--name", "notify", "--version", "0.3.0"])
        .output()
        .expect("rivet runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let file = crate::support::write(
        dir.path(),
        "ping.lua",
        r#"return pipeline.define {
    name = "ping",
    plugins = { "notify" },
    http = { hosts = { "*.example.com" }, methods = { "GET" } },
    stages = { { name = "s", network = "none", script = function() end } },
}
"#,
    );
    let output = server.rivet().args(["pipeline", "create"]).arg(&file).output().expect("rivet runs");
    assert!(output.status.success(), "{}", text(&output.stderr));

    let sha256 = rivet_core::plugin::sha256(source);
    let output = server.rivet().args(["pipeline", "show", "ping"]).env("NO_COLOR", "1").output().expect("rivet runs");
    let shown = text(&output.stdout);
    assert!(shown.contains(&format!("plugins     notify@0.3.0 (sha256:{})\n", &sha256[..12])), "{shown}");
    assert!(shown.contains("http        *.example.com (GET)\n"), "{shown}");
    assert!(shown.contains("none"), "the stage's network is shown: {shown}");
    let json = server.json(&["pipeline", "show", "ping"]);
    assert_eq!(json["plugin_pins"][0]["sha256"], sha256.as_str());
    assert_eq!(json["plugin_pins"][0]["version"], "0.3.0");
    assert_eq!(json["definition"]["http"]["hosts"][0], "*.example.com");
    assert_eq!(json["definition"]["stages"][0]["network"], "none");
}
