//! `rivet secret set|list|delete` against a real `rivet dev`: values come from stdin,
//! never the command line, are never printed back, and a job of a pipeline that declares
//! the secret reads it while its log shows it masked.

use predicates::str::contains;

use crate::support::{Server, text};

const VALUE: &str = "cli-secret-value-8841";

pub const DEPLOY: &str = r#"return pipeline.define({
    name = "deploy",
    secrets = { "DEPLOY_TOKEN" },
    stages = {
        {
            name = "ship",
            container = "localhost/rivet-test:latest",
            script = function()
                process.run({ cmd = "sh", args = { "-c", 'echo "token is $T"' }, env = { T = secret.get("DEPLOY_TOKEN") } })
            end,
        },
    },
})
"#;

/// Every file named `name` under `dir`.
fn find(dir: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(find(&path, name));
        } else if path.file_name().is_some_and(|file| file == name) {
            found.push(path);
        }
    }
    found
}

#[test]
fn secrets_are_set_from_stdin_listed_without_values_used_masked_and_deleted() {
    use std::os::unix::fs::PermissionsExt;

    let server = Server::start();
    server
        .rivet()
        .args(["secret", "set", "DEPLOY_TOKEN"])
        .write_stdin(format!("{VALUE}\n"))
        .assert()
        .code(0)
        .stdout("set secret DEPLOY_TOKEN (global)\n");
    server
        .rivet()
        .args(["secret", "set", "DEPLOY_TOKEN", "--pipeline", "deploy"])
        .write_stdin(VALUE)
        .assert()
        .code(0)
        .stdout("set secret DEPLOY_TOKEN (pipeline deploy)\n");
    let output = server.rivet().args(["secret", "set", "SHORT"]).write_stdin("abc").output().expect("rivet runs");
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("at least 6 bytes"), "{}", text(&output.stderr));

    let listed = server.json(&["secret", "list"]);
    let scopes: Vec<(String, String)> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_owned(), s["pipeline"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(scopes, [("DEPLOY_TOKEN".to_owned(), String::new()), ("DEPLOY_TOKEN".to_owned(), "deploy".to_owned())]);
    assert!(!listed.to_string().contains(VALUE));
    server.rivet().args(["secret", "list"]).assert().code(0).stdout(contains("pipeline deploy"));

    server.create("deploy.lua", DEPLOY);
    let output = server.rivet().args(["job", "launch", "deploy", "--follow"]).output().expect("rivet runs");
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("token is ***"), "{stdout}");
    assert!(!stdout.contains(VALUE) && !stderr.contains(VALUE), "{stdout}{stderr}");

    server
        .rivet()
        .args(["secret", "delete", "DEPLOY_TOKEN", "--pipeline", "deploy"])
        .assert()
        .code(0)
        .stdout("deleted secret DEPLOY_TOKEN (pipeline deploy)\n");
    server.rivet().args(["secret", "delete", "DEPLOY_TOKEN", "--pipeline", "deploy"]).assert().code(8);

    // The embedded server made its own key, readable by this user only.
    let keys = find(server.home(), "secrets.key");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let mode = std::fs::metadata(&keys[0]).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
