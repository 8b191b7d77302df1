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

#[test]
fn every_client_setting_can_be_set_through_the_environment() {
    let home = temp_dir();
    let output = rivet()
        .env("XDG_CONFIG_HOME", home.path())
        .env("RIVET_SERVER", "https://ci.example:7420")
        .env("RIVET_TOKEN", "env-token-0123456789")
        .env("RIVET_CA_FILE", "/etc/rivet/ca.pem")
        .args(["config", "show", "--output", "json"])
        .output()
        .expect("rivet runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let config: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(config["server"]["value"], "https://ci.example:7420");
    assert_eq!(config["token"]["value"], "…6789 (20 characters)");
    assert_eq!(config["ca_file"]["value"], "/etc/rivet/ca.pem");
    assert_eq!(config["ca_file"]["source"], "environment variable RIVET_CA_FILE");
}

#[test]
fn a_mistyped_client_variable_is_refused_naming_the_one_meant() {
    rivet()
        .env_remove("RIVET_SERVER")
        .env("RIVET_SEVER", "http://elsewhere:1")
        .args(["config", "show"])
        .assert()
        .code(2)
        .stderr(contains("RIVET_SEVER names no setting").and(contains("did you mean RIVET_SERVER?")));
    // The orchestrator's variables are not the client's business.
    rivet().env("RIVET_DATABASE_URL", "postgres://db/rivet").args(["config", "show"]).assert().code(0);
}

#[test]
fn a_ca_file_for_a_plain_text_server_is_refused() {
    rivet()
        .env("RIVET_CA_FILE", "/etc/rivet/ca.pem")
        .args(["--server", "http://127.0.0.1:1", "pipeline", "list"])
        .assert()
        .code(2)
        .stderr(contains("TLS files are configured but `http://127.0.0.1:1` is not an https:// address"));
}

#[test]
fn rivet_dev_refuses_an_exposed_address_without_insecure() {
    let home = temp_dir();
    rivet()
        .env("XDG_DATA_HOME", home.path())
        .args(["dev", "--listen", "0.0.0.0:0"])
        .assert()
        .code(2)
        .stderr(contains("refusing to listen on 0.0.0.0:0 without TLS").and(contains("--insecure")));
}
