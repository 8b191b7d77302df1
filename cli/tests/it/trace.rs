//! Trace context from the command line: `rivet dev` exports spans when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and a `rivet` command run under a `TRACEPARENT`
//! (as a traced CI script or `otel-cli` sets it) launches a job that joins that trace:
//! `rivet job show` prints the trace id.

use crate::support::Server;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

#[test]
fn a_launch_under_a_traceparent_joins_its_trace() {
    // Nothing listens there: the spans are made, their export fails quietly.
    let server = Server::start_with_env(&[], &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")]);
    server.create(
        "traced.lua",
        r#"return pipeline.define { name = "traced", stages = { { name = "s", script = function() end } } }"#,
    );
    let launched = server
        .rivet()
        .env("TRACEPARENT", format!("00-{TRACE}-b7ad6b7169203331-01"))
        .args(["job", "launch", "traced", "--output", "json"])
        .output()
        .expect("rivet runs");
    assert!(launched.status.success(), "{}", String::from_utf8_lossy(&launched.stderr));
    let job: serde_json::Value = serde_json::from_slice(&launched.stdout).expect("JSON");
    assert_eq!(job["trace_id"], TRACE, "{job}");
    let id = job["id"].as_str().expect("an id");

    let shown = server.rivet().args(["job", "show", id]).output().expect("rivet runs");
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.lines().any(|line| line.contains("trace") && line.contains(TRACE)), "{text}");
    assert!(text.contains("started by"), "{text}");

    // A malformed TRACEPARENT is ignored: the job gets a trace of its own.
    let launched = server
        .rivet()
        .env("TRACEPARENT", "00-nonsense")
        .args(["job", "launch", "traced", "--output", "json"])
        .output()
        .expect("rivet runs");
    assert!(launched.status.success(), "{}", String::from_utf8_lossy(&launched.stderr));
    let job: serde_json::Value = serde_json::from_slice(&launched.stdout).expect("JSON");
    let own = job["trace_id"].as_str().expect("a trace id");
    assert_eq!(own.len(), 32);
    assert_ne!(own, TRACE);
}
