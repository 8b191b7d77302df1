//! The runner's configuration means what it says: every documented setting of
//! `deploy/config/runner.toml` set through its `RIVET_RUNNER_*` variable shows up in the
//! effective configuration (`rivet-runner --print-config`), secrets redacted, and a
//! variable naming no setting stops the start.

use std::process::{Command, Output, Stdio};

use rivet_core::settings::{KeyPaths, documented_keys, var_name};
use rivet_runner::agent::AgentConfig;
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_rivet-runner");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/config/runner.toml");
const PREFIX: &str = "RIVET_RUNNER_";

fn runner(vars: &[(String, String)]) -> Output {
    Command::new(BINARY)
        .arg("--print-config")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().cloned())
        .stdin(Stdio::null())
        .output()
        .expect("rivet-runner runs")
}

#[test]
fn every_documented_runner_setting_can_be_set_through_the_environment() {
    let settings: Vec<(&str, &str, Value)> = vec![
        ("orchestrator_url", "https://ci.example:7420", json!("https://ci.example:7420")),
        ("registration_token", "reg-s3cret", json!("REDACTED")),
        // The old name of `registration_token`: not serialized by default, still read.
        ("token", "old-s3cret", json!("REDACTED")),
        ("name", "build-box-9", json!("build-box-9")),
        ("labels", r#"{zone="eu"}"#, json!({ "zone": "eu" })),
        ("capacity", "6", json!(6)),
        ("state_dir", "/srv/rivet", json!("/srv/rivet")),
        ("log_memory_bytes", "1048576", json!(1048576)),
        ("reconnect_min_ms", "100", json!(100)),
        ("reconnect_max_ms", "9000", json!(9000)),
        ("max_message_bytes", "16777216", json!(16777216)),
        ("max_log_batch_bytes", "2097152", json!(2097152)),
        ("max_log_spill_bytes", "536870912", json!(536870912)),
        ("tls.ca_file", "/etc/rivet/ca.pem", json!("/etc/rivet/ca.pem")),
        ("tls.cert_file", "/etc/rivet/runner.pem", json!("/etc/rivet/runner.pem")),
        ("tls.key_file", "/etc/rivet/runner-key.pem", json!("/etc/rivet/runner-key.pem")),
        ("telemetry.otlp_endpoint", "http://collector.internal:4317", json!("http://collector.internal:4317")),
        ("telemetry.service_name", "runner-eu", json!("runner-eu")),
        ("telemetry.filter", "info,rivet_runner=debug", json!("info,rivet_runner=debug")),
        ("telemetry.export_timeout_secs", "3", json!(3)),
        ("metrics.listen", "0.0.0.0:9465", json!("0.0.0.0:9465")),
        ("executor.podman_socket", "unix:///tmp/podman.sock", json!("unix:///tmp/podman.sock")),
        ("executor.podman_autostart", "false", json!(false)),
        ("executor.default_image", "alpine:3.20", json!("alpine:3.20")),
        ("executor.workspace_root", "/srv/rivet/ws", json!("/srv/rivet/ws")),
        ("executor.keep_workspace_on_failure", "true", json!(true)),
        ("executor.instance", "\"7\"", json!("7")),
        ("executor.stage_timeout_secs", "600", json!(600)),
        ("executor.container_memory_bytes", "1073741824", json!(1073741824)),
        ("executor.container_nano_cpus", "1500000000", json!(1500000000)),
        ("executor.container_pids_limit", "512", json!(512)),
        ("executor.container_capabilities", r#"["CHOWN"]"#, json!(["CHOWN"])),
        ("executor.lua_memory_bytes", "33554432", json!(33554432)),
        ("executor.lua_time_budget_ms", "5000", json!(5000)),
        ("executor.max_captured_output_bytes", "65536", json!(65536)),
        ("executor.max_log_line_bytes", "32768", json!(32768)),
        ("executor.max_job_log_bytes", "1048576", json!(1048576)),
        ("executor.cancel_grace_secs", "9", json!(9)),
        ("executor.default_network", "none", json!("none")),
        ("executor.container_uid_base", "2000000", json!(2000000)),
        ("executor.fs_max_read_bytes", "1048576", json!(1048576)),
        ("executor.fs_max_write_bytes", "2097152", json!(2097152)),
        ("executor.http.allowed_hosts", r#"["*.example.com"]"#, json!(["*.example.com"])),
        ("executor.http.allowed_methods", r#"["GET"]"#, json!(["GET"])),
        ("executor.http.max_request_body_bytes", "1024", json!(1024)),
        ("executor.http.max_response_body_bytes", "4096", json!(4096)),
        ("executor.http.timeout_secs", "7", json!(7)),
        ("executor.http.max_redirects", "2", json!(2)),
        ("executor.http.allow_private_addresses", "true", json!(true)),
    ];
    let keys = KeyPaths::from_defaults(&serde_json::to_value(AgentConfig::default()).expect("serializable"));
    let covered: Vec<&str> = settings.iter().map(|(path, ..)| *path).collect();
    for path in keys.all() {
        assert!(covered.contains(&path.as_str()), "no environment test for the runner setting `{path}`");
    }
    for path in documented_keys(&std::fs::read_to_string(EXAMPLE).expect("the example exists")) {
        let known = covered.iter().any(|covered| path == *covered || path.starts_with(&format!("{covered}.")));
        assert!(known, "deploy/config/runner.toml documents `{path}`, untested");
    }

    let vars: Vec<(String, String)> =
        settings.iter().map(|(path, value, _)| (var_name(PREFIX, path), (*value).to_owned())).collect();
    let output = runner(&vars);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for secret in ["reg-s3cret", "old-s3cret"] {
        assert!(!stdout.contains(secret), "--print-config printed the token `{secret}`:\n{stdout}");
    }
    let effective: Value = serde_json::from_str(&stdout).expect("JSON");
    for (path, _, expected) in &settings {
        let pointer = format!("/{}", path.replace('.', "/"));
        assert_eq!(effective.pointer(&pointer), Some(expected), "{} did not set `{path}`", var_name(PREFIX, path));
    }
}

#[test]
fn a_variable_naming_no_runner_setting_stops_the_start() {
    for (var, expected) in [
        ("RIVET_RUNNER_CAPACTY", "RIVET_RUNNER_CAPACTY (did you mean RIVET_RUNNER_CAPACITY?)"),
        ("RIVET_RUNNER_EXECUTOR_DEFAULT_IMAGE", "(did you mean RIVET_RUNNER_EXECUTOR__DEFAULT_IMAGE?)"),
        ("RIVET_RUNNER_SOMETHING_ELSE", "RIVET_RUNNER_SOMETHING_ELSE"),
    ] {
        let output = runner(&[(var.to_owned(), "4".to_owned())]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{var} was accepted");
        assert!(stderr.contains("naming no runner setting") && stderr.contains(expected), "{var}: {stderr}");
    }
}
