//! The client without a server: settings and where they come from, completions, and the
//! error for a server that is not there.

use predicates::prelude::*;
use predicates::str::contains;

use crate::support::{rivet, temp_dir, text, write};

#[test]
fn an_unreachable_server_says_how_to_start_one() {
    rivet().args(["--server", "http://127.0.0.1:1", "pipeline", "list"]).assert().code(9).stderr(
        contains("cannot reach the Rivet server at http://127.0.0.1:1")
            .and(contains("rivet dev"))
            .and(contains("RIVET_SERVER")),
    );
}

#[test]
fn config_show_names_the_source_of_each_setting() {
    let home = temp_dir();
    std::fs::create_dir_all(home.path().join("rivet")).expect("mkdir");
    write(
        &home.path().join("rivet"),
        "config.toml",
        "server = \"http://from-file:7420\"\ntoken = \"file-token-0123456789\"\n",
    );
    // `config show --output json` with RIVET_SERVER set to `env` (if any) and extra args.
    let show = |env: Option<&str>, args: &[&str]| {
        let mut command = rivet();
        command.env("XDG_CONFIG_HOME", home.path()).env_remove("RIVET_SERVER").env_remove("RIVET_TOKEN");
        if let Some(server) = env {
            command.env("RIVET_SERVER", server);
        }
        let output = command.args(args).args(["config", "show", "--output", "json"]).output().expect("rivet runs");
        assert!(output.status.success(), "{}", text(&output.stderr));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).expect("JSON")
    };
    let config = show(None, &[]);
    let file = home.path().join("rivet/config.toml");
    assert_eq!(config["server"]["value"], "http://from-file:7420");
    assert_eq!(config["server"]["source"], format!("config file {}", file.display()));
    assert_eq!(config["token"]["value"], "…6789 (21 characters)");
    assert_eq!(config["token"]["source"], format!("config file {}", file.display()));

    let config = show(Some("http://from-env:1"), &[]);
    assert_eq!(config["server"]["source"], "environment variable RIVET_SERVER");
    let config = show(Some("http://from-env:1"), &["--server", "from-flag:2"]);
    assert_eq!(config["server"]["value"], "http://from-flag:2");
    assert_eq!(config["server"]["source"], "flag --server");

    let empty = temp_dir();
    rivet()
        .env("XDG_CONFIG_HOME", empty.path())
        .env_remove("RIVET_SERVER")
        .env_remove("RIVET_TOKEN")
        .args(["config", "show"])
        .assert()
        .code(0)
        .stdout(contains("http://127.0.0.1:7420").and(contains("default")).and(contains("(not present)")));
}

#[test]
fn a_broken_config_file_is_named() {
    let home = temp_dir();
    std::fs::create_dir_all(home.path().join("rivet")).expect("mkdir");
    write(&home.path().join("rivet"), "config.toml", "sever = \"typo\"\n");
    rivet()
        .env("XDG_CONFIG_HOME", home.path())
        .args(["pipeline", "list"])
        .assert()
        .code(2)
        .stderr(contains("invalid configuration").and(contains("config.toml")).and(contains("sever")));
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        rivet().args(["completions", shell]).assert().code(0).stdout(contains("pipeline").and(contains("launch")));
    }
}
