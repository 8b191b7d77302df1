//! The deploy files, as written, start a closed server: TLS only, no call without a
//! token, and no runner without a credential, which the runner's documented registration
//! token obtains. Each test reads the orchestrator's command line and environment from the files
//! an operator uses (the compose file, the Kubernetes manifest, the systemd unit and its
//! environment file, and the Containerfile they run) and starts the real binary with them.
//!
//! Only what cannot exist on a test machine is changed: host names of the database and
//! Redis (a fresh SQLite file instead; Redis is left out) and of the trace collector (left
//! out), the ports (any free ones, on the same addresses), file paths under `/etc/rivet`
//! (the repository's configuration, and certificates made by `deploy/tls/make-certs.sh`),
//! and the values Kubernetes fills in (secrets from the `kubectl create secret` lines the
//! manifest documents).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use rivet_proto::endpoint::ClientTls;
use rivet_proto::v1 as pb;
use rivet_proto::v1::runner_service_client::RunnerServiceClient;
use serde_json::Value;
use tempfile::TempDir;
use tonic::Code;
use uuid::Uuid;

use crate::trust::{list_pipelines, serving_addr};

const BINARY: &str = env!("CARGO_BIN_EXE_rivet-orchestrator");
const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(DEPLOY).join(path)).unwrap_or_else(|err| panic!("deploy/{path}: {err}"))
}

/// How a deploy file starts the orchestrator: its arguments and environment; and the
/// registration token the same file gives its runners.
#[derive(Debug, Default)]
struct Launch {
    args: Vec<String>,
    env: BTreeMap<String, String>,
    runner_token: Option<String>,
}

/// What `deploy/Containerfile.orchestrator` adds: its `ENV` lines and its entrypoint's
/// arguments.
fn containerfile() -> Launch {
    let text = read("Containerfile.orchestrator");
    let mut launch = Launch::default();
    for line in text.lines() {
        if let Some((key, value)) = line.strip_prefix("ENV ").and_then(|rest| rest.split_once('=')) {
            launch.env.insert(key.trim().to_owned(), value.trim().to_owned());
        }
        if let Some(entrypoint) = line.strip_prefix("ENTRYPOINT ") {
            let argv: Vec<String> = serde_json::from_str(entrypoint).expect("ENTRYPOINT is a JSON array");
            launch.args = argv.into_iter().skip(1).collect();
        }
    }
    assert!(!launch.args.is_empty(), "the Containerfile has an ENTRYPOINT");
    launch
}

fn compose() -> Launch {
    let doc: Value = serde_norway::from_str(&read("compose.yaml")).expect("compose.yaml parses");
    let mut launch = containerfile();
    let environment = doc["services"]["orchestrator"]["environment"].as_object().expect("an environment map");
    for (key, value) in environment {
        launch.env.insert(key.clone(), value.as_str().expect("string values").to_owned());
    }
    let runner = &doc["services"]["runner"]["environment"]["RIVET_RUNNER_REGISTRATION_TOKEN"];
    launch.runner_token = runner.as_str().map(str::to_owned);
    launch
}

fn kubernetes() -> Launch {
    let text = read("kubernetes/rivet.yaml");
    // The secrets the manifest tells the operator to create, as `--from-literal=key=value`.
    let mut secrets = BTreeMap::new();
    for literal in text.split("--from-literal=").skip(1) {
        let literal = literal.split_whitespace().next().unwrap_or_default().trim_end_matches('\\');
        let (key, value) = literal.split_once('=').expect("key=value");
        secrets.insert(key.to_owned(), value.trim_matches('\'').to_owned());
    }
    let mut launch = containerfile();
    let mut found = false;
    for document in serde_norway::Deserializer::from_str(&text) {
        let doc: Value = serde::Deserialize::deserialize(document).expect("a manifest parses");
        if doc["kind"] == "Deployment" && doc["metadata"]["name"] == "rivet-runner" {
            let env = doc["spec"]["template"]["spec"]["containers"][0]["env"].as_array().expect("env");
            let token = env.iter().find(|var| var["name"] == "RIVET_RUNNER_REGISTRATION_TOKEN");
            launch.runner_token = token.map(|var| match var["valueFrom"]["secretKeyRef"]["key"].as_str() {
                Some(key) => secrets.get(key).unwrap_or_else(|| panic!("no documented secret `{key}`")).clone(),
                None => var["value"].as_str().expect("a value").to_owned(),
            });
        }
        if doc["kind"] != "Deployment" || doc["metadata"]["name"] != "rivet-orchestrator" {
            continue;
        }
        found = true;
        let container = &doc["spec"]["template"]["spec"]["containers"][0];
        for var in container["env"].as_array().expect("env") {
            let name = var["name"].as_str().expect("name").to_owned();
            let value = match (&var["value"], &var["valueFrom"]) {
                (Value::String(value), _) => value.clone(),
                (_, from) if from["secretKeyRef"].is_object() => {
                    let key = from["secretKeyRef"]["key"].as_str().expect("key");
                    secrets.get(key).unwrap_or_else(|| panic!("no documented secret `{key}`")).clone()
                }
                (_, from) if from["fieldRef"].is_object() => "rivet-orchestrator-0".to_owned(),
                other => panic!("unexpected env entry {other:?}"),
            };
            launch.env.insert(name, value);
        }
    }
    assert!(found, "the manifest has a rivet-orchestrator Deployment");
    launch
}

fn systemd() -> Launch {
    let unit = read("systemd/rivet-orchestrator.service");
    let mut launch = Launch::default();
    for line in unit.lines() {
        if let Some(command) = line.strip_prefix("ExecStart=") {
            launch.args = command.split_whitespace().skip(1).map(str::to_owned).collect();
        }
        if let Some(assignments) = line.strip_prefix("Environment=") {
            for assignment in assignments.split_whitespace() {
                let (key, value) = assignment.split_once('=').expect("KEY=VALUE");
                launch.env.insert(key.to_owned(), value.to_owned());
            }
        }
        if let Some(file) = line.strip_prefix("EnvironmentFile=") {
            assert_eq!(file, "/etc/rivet/orchestrator.env", "the unit reads the documented environment file");
            for line in read("systemd/orchestrator.env").lines().filter(|l| !l.starts_with('#') && l.contains('=')) {
                let (key, value) = line.split_once('=').expect("KEY=VALUE");
                launch.env.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    let runner = read("systemd/runner.env");
    launch.runner_token = runner
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix("RIVET_RUNNER_REGISTRATION_TOKEN="))
        .map(str::to_owned);
    launch
}

/// Makes the launch runnable here (see the module docs) and starts it.
async fn start(launch: Launch, certs: &Path, data: &Path) -> (tokio::process::Child, String) {
    let local = |value: &str| -> String {
        if value == "/etc/rivet/orchestrator.toml" {
            return format!("{DEPLOY}/config/orchestrator.toml");
        }
        match value.strip_prefix("/etc/rivet/tls/").or_else(|| value.strip_prefix("%d/")) {
            Some(file) => certs.join(file).display().to_string(),
            None => value.to_owned(),
        }
    };
    let mut command = tokio::process::Command::new(BINARY);
    command.args(launch.args.iter().map(|arg| local(arg)));
    command.env_clear().env("NO_COLOR", "1").env("RUST_LOG", "info");
    for (key, value) in &launch.env {
        let value = match key.as_str() {
            "RIVET_DATABASE_URL" => format!("sqlite://{}/rivet.db?mode=rwc", data.display()),
            "RIVET_REDIS_URL" => continue,
            "RIVET_LISTEN" => {
                let (host, _) = value.rsplit_once(':').expect("host:port");
                assert!(host != "127.0.0.1", "{key}={value} is loopback: the test would prove nothing");
                format!("{host}:0")
            }
            // Tests run at once: each needs its own metrics port.
            "RIVET_METRICS__LISTEN" => {
                let (host, _) = value.rsplit_once(':').expect("host:port");
                format!("{host}:0")
            }
            // The collector's host (compose's `jaeger`) does not exist here.
            "RIVET_TELEMETRY__OTLP_ENDPOINT" => continue,
            _ => local(value),
        };
        command.env(key, value);
    }
    command.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = command.spawn().expect("rivet-orchestrator starts");
    let addr = serving_addr(&mut child).await.unwrap_or_else(|log| panic!("the deployment did not start:\n{log}"));
    (child, addr)
}

async fn assert_closed(name: &str, launch: Launch) {
    let registration: Vec<String> = serde_json::from_str(
        launch
            .env
            .get("RIVET_AUTH__REGISTRATION_TOKENS")
            .unwrap_or_else(|| panic!("{name} configures no registration token")),
    )
    .expect("a JSON list of tokens");
    let runner_token = launch.runner_token.clone().unwrap_or_else(|| panic!("{name} gives its runners no token"));
    assert!(registration.contains(&runner_token), "{name}: the runners' token is not one the orchestrator accepts");
    let api_token: Vec<String> = serde_json::from_str(
        launch.env.get("RIVET_AUTH__API_TOKENS").unwrap_or_else(|| panic!("{name} configures no API token")),
    )
    .expect("a JSON list of tokens");
    let certs = TempDir::new().expect("tempdir");
    let made = std::process::Command::new(format!("{DEPLOY}/tls/make-certs.sh"))
        .arg(certs.path())
        .output()
        .expect("deploy/tls/make-certs.sh runs");
    assert!(made.status.success(), "make-certs.sh: {}", String::from_utf8_lossy(&made.stderr));
    let data = TempDir::new().expect("tempdir");
    let (mut child, addr) = start(launch, certs.path(), data.path()).await;
    let port = addr.rsplit_once(':').map(|(_, port)| port.to_owned()).expect("a port");
    let https = format!("https://localhost:{port}");
    let ca = certs.path().join("ca.pem");
    let trusted = ClientTls { ca_file: Some(&ca), ..ClientTls::default() };

    let plain = list_pipelines(&format!("http://localhost:{port}"), ClientTls::default()).await;
    assert!(plain.is_err(), "{name}: a plain-text client was served");
    let anonymous = list_pipelines(&https, trusted).await.expect_err(&format!("{name}: an anonymous call was served"));
    assert!(anonymous.contains("Unauthenticated"), "{name}: {anonymous}");
    authorized(&https, &ca, &api_token[0])
        .await
        .unwrap_or_else(|err| panic!("{name}: the API token is refused: {err}"));

    // A runner without a credential is refused; the documented registration token gets
    // one, and the credential opens the stream.
    let status = runner_connect(&https, &ca, None, Uuid::new_v4())
        .await
        .expect_err(&format!("{name}: a runner without a credential was welcomed"));
    assert_eq!(status.code(), Code::Unauthenticated, "{name}: {status:?}");
    let status = runner_connect(&https, &ca, Some(&runner_token), Uuid::new_v4())
        .await
        .expect_err(&format!("{name}: the registration token opened a runner stream"));
    assert_eq!(status.code(), Code::Unauthenticated, "{name}: {status:?}");
    let registered = register(&https, &ca, &runner_token)
        .await
        .unwrap_or_else(|status| panic!("{name}: RegisterRunner with the documented token failed: {status:?}"));
    let runner_id = Uuid::parse_str(&registered.runner_id).expect("a runner id");
    runner_connect(&https, &ca, Some(&registered.credential), runner_id)
        .await
        .unwrap_or_else(|status| panic!("{name}: the runner's credential was refused: {status:?}"));
    let _ = child.kill().await;
}

async fn runner_client(url: &str, ca: &Path) -> RunnerServiceClient<tonic::transport::Channel> {
    let channel = rivet_proto::endpoint::endpoint(url, ClientTls { ca_file: Some(ca), ..ClientTls::default() })
        .expect("endpoint")
        .connect()
        .await
        .expect("TLS connects");
    RunnerServiceClient::new(channel)
}

fn bearer<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ASCII token"));
    }
    request
}

async fn register(url: &str, ca: &Path, token: &str) -> Result<pb::RegisterRunnerResponse, tonic::Status> {
    let request = pb::RegisterRunnerRequest { name: "deployed-runner".into(), ..Default::default() };
    runner_client(url, ca).await.register_runner(bearer(request, Some(token))).await.map(tonic::Response::into_inner)
}

/// Opens a runner stream as `runner_id` and returns the welcome, or the refusal.
async fn runner_connect(
    url: &str,
    ca: &Path,
    token: Option<&str>,
    runner_id: Uuid,
) -> Result<pb::RunnerWelcome, tonic::Status> {
    let hello = pb::RunnerHello {
        protocol_versions: vec![rivet_core::job::PROTOCOL_VERSION],
        runner_id: runner_id.to_string(),
        name: "deployed-runner".to_owned(),
        capacity: 1,
        ..pb::RunnerHello::default()
    };
    let hello = pb::ConnectRequest { body: Some(pb::connect_request::Body::Hello(hello)) };
    // The stream stays open (the runner would keep it) until the answer is read.
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    sender.send(hello).await.expect("queue the hello");
    let outbound = tokio_stream::wrappers::ReceiverStream::new(receiver);
    let mut inbound = runner_client(url, ca).await.connect(bearer(outbound, token)).await?.into_inner();
    let answer = inbound.message().await?;
    drop(sender);
    match answer {
        Some(pb::ConnectResponse { body: Some(pb::connect_response::Body::Welcome(welcome)) }) => Ok(welcome),
        other => panic!("expected a welcome, got {other:?}"),
    }
}

async fn authorized(url: &str, ca: &Path, token: &str) -> Result<(), String> {
    let channel = rivet_proto::endpoint::endpoint(url, ClientTls { ca_file: Some(ca), ..ClientTls::default() })
        .map_err(|err| err.to_string())?
        .connect()
        .await
        .map_err(|err| err.to_string())?;
    let mut request = tonic::Request::new(rivet_proto::v1::ListPipelinesRequest::default());
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().map_err(|_| "header")?);
    rivet_proto::v1::pipeline_service_client::PipelineServiceClient::new(channel)
        .list_pipelines(request)
        .await
        .map(|_| ())
        .map_err(|status| format!("{status:?}"))
}

#[tokio::test]
async fn the_compose_file_starts_a_closed_server() {
    assert_closed("deploy/compose.yaml", compose()).await;
}

#[tokio::test]
async fn the_kubernetes_manifest_starts_a_closed_server() {
    assert_closed("deploy/kubernetes/rivet.yaml", kubernetes()).await;
}

#[tokio::test]
async fn the_systemd_unit_starts_a_closed_server() {
    assert_closed("deploy/systemd/rivet-orchestrator.service", systemd()).await;
}
