//! Trust boundaries: the configuration means what it says (every documented setting through
//! the environment, typos refused, secrets never printed, no exposed plain-text listener)
//! and TLS, with mutual TLS for runners, over real gRPC.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use rivet_core::settings::{KeyPaths, documented_keys, var_name};
use rivet_orchestrator::config::{Config, REDACTED};
use rivet_proto::endpoint::{ClientTls, endpoint};
use rivet_proto::v1::pipeline_service_client::PipelineServiceClient;
use rivet_proto::v1::runner_service_client::RunnerServiceClient;
use rivet_proto::v1::{self as pb, ConnectRequest, ListPipelinesRequest, connect_request, connect_response};
use serde_json::{Value, json};
use tempfile::TempDir;
use tonic::Code;
use uuid::Uuid;

use crate::support::{Backend, Cluster};

const BINARY: &str = env!("CARGO_BIN_EXE_rivet-orchestrator");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/config/orchestrator.toml");

/// Runs `rivet-orchestrator ARGS` with only `vars` in its environment.
fn orchestrator(args: &[&str], vars: &[(String, String)]) -> Output {
    Command::new(BINARY)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().cloned())
        .stdin(Stdio::null())
        .output()
        .expect("rivet-orchestrator runs")
}

fn print_config(vars: &[(String, String)]) -> Value {
    let output = orchestrator(&["--print-config"], vars);
    assert!(output.status.success(), "--print-config failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("--print-config prints JSON")
}

fn var(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

/// Every documented setting, set through its environment variable exactly as the
/// documentation spells it, shows up in the effective configuration. The table must cover
/// every setting of `Config` and every key of `deploy/config/orchestrator.toml`, so a new
/// setting cannot be added without proving it can be set this way.
#[test]
fn every_documented_setting_can_be_set_through_the_environment() {
    let pki = Pki::new();
    let (cert, key, ca) = (pki.server_cert_str(), pki.server_key_str(), pki.ca_str());
    let settings: Vec<(&str, &str, Value)> = vec![
        ("listen", "127.0.0.1:7999", json!("127.0.0.1:7999")),
        ("database_url", "postgres://rivet@db.internal/rivet", json!("postgres://rivet@db.internal/rivet")),
        ("redis_url", "rediss://cache.internal:6380", json!("rediss://cache.internal:6380")),
        ("redis_namespace", "ci", json!("ci")),
        ("replica_id", "orchestrator-7", json!("orchestrator-7")),
        ("lease_ttl_ms", "9000", json!(9000)),
        ("heartbeat_interval_ms", "1000", json!(1000)),
        ("max_attempts", "5", json!(5)),
        ("job_timeout_secs", "7200", json!(7200)),
        ("job_timeout_grace_secs", "30", json!(30)),
        ("evaluation.workers", "3", json!(3)),
        ("evaluation.queue", "7", json!(7)),
        ("evaluation.time_budget_ms", "1500", json!(1500)),
        ("evaluation.memory_bytes", "33554432", json!(33554432)),
        ("evaluation.worker_program", "/usr/local/bin/rivet-orchestrator", json!("/usr/local/bin/rivet-orchestrator")),
        ("max_message_bytes", "4194304", json!(4194304)),
        ("max_pipeline_bytes", "65536", json!(65536)),
        ("shutdown_grace_ms", "2500", json!(2500)),
        ("log_follow_poll_ms", "250", json!(250)),
        ("schedules.tick_ms", "250", json!(250)),
        ("schedules.grace_secs", "120", json!(120)),
        ("insecure", "true", json!(true)),
        ("auth.api_tokens", r#"["api-one","api-two"]"#, json!([REDACTED, REDACTED])),
        ("auth.registration_tokens", r#"["registration-one","registration-two"]"#, json!([REDACTED, REDACTED])),
        // The old name of registration tokens: not serialized by default, still read.
        ("auth.runner_tokens", r#"["runner-one"]"#, json!([REDACTED])),
        ("tls.cert_file", &cert, json!(cert)),
        ("tls.key_file", &key, json!(key)),
        ("tls.client_ca_file", &ca, json!(ca)),
        ("tls.require_runner_certificate", "true", json!(true)),
        ("secrets.key_file", "/etc/rivet/secrets.key", json!("/etc/rivet/secrets.key")),
        ("secrets.key", "ab5e2d0c1f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c", json!(REDACTED)),
        ("secrets.previous_key_files", r#"["/etc/rivet/old.key"]"#, json!(["/etc/rivet/old.key"])),
        ("secrets.previous_keys", r#"["old-key-in-base64"]"#, json!([REDACTED])),
        ("telemetry.otlp_endpoint", "http://collector.internal:4317", json!("http://collector.internal:4317")),
        ("telemetry.service_name", "rivet-eu", json!("rivet-eu")),
        ("telemetry.filter", "info,rivet_orchestrator=debug", json!("info,rivet_orchestrator=debug")),
        ("telemetry.export_timeout_secs", "3", json!(3)),
        ("metrics.listen", "0.0.0.0:9464", json!("0.0.0.0:9464")),
        ("webhooks.listen", "127.0.0.1:7998", json!("127.0.0.1:7998")),
        ("webhooks.public_url", "https://ci.example.com", json!("https://ci.example.com")),
        ("webhooks.max_body_bytes", "1048576", json!(1048576)),
        ("webhooks.request_timeout_secs", "20", json!(20)),
        ("webhooks.max_connections", "32", json!(32)),
        ("webhooks.job_url", "https://ci.example.com/jobs/{job}", json!("https://ci.example.com/jobs/{job}")),
    ];

    let keys = KeyPaths::from_defaults(&serde_json::to_value(Config::default()).expect("serializable"));
    let covered: Vec<&str> = settings.iter().map(|(path, ..)| *path).collect();
    for path in keys.all() {
        assert!(covered.contains(&path.as_str()), "no environment test for the setting `{path}`");
    }
    let documented = documented_keys(&std::fs::read_to_string(EXAMPLE).expect("the example exists"));
    for path in &documented {
        assert!(covered.contains(&path.as_str()), "deploy/config/orchestrator.toml documents `{path}`, untested");
    }

    let mut vars: Vec<(String, String)> =
        settings.iter().map(|(path, value, _)| (var_name("RIVET_", path), (*value).to_owned())).collect();
    // An OTLP endpoint would start an exporter, which says so on stdout, before the JSON.
    vars.push(var("OTEL_SDK_DISABLED", "true"));
    let effective = print_config(&vars);
    for (path, _, expected) in &settings {
        let pointer = format!("/{}", path.replace('.', "/"));
        assert_eq!(effective.pointer(&pointer), Some(expected), "{} did not set `{path}`", var_name("RIVET_", path));
    }
}

#[test]
fn a_mistyped_variable_stops_the_start_naming_the_one_meant() {
    for (typo, meant) in [
        ("RIVET_LEASE_TLL_MS", "RIVET_LEASE_TTL_MS"),
        ("RIVET_AUTH_API_TOKENS", "RIVET_AUTH__API_TOKENS"),
        ("RIVET_AUTH__API_TOKEN", "RIVET_AUTH__API_TOKENS"),
        ("RIVET_TLS__CERT_FIEL", "RIVET_TLS__CERT_FILE"),
    ] {
        let output = orchestrator(&["--print-config"], &[var(typo, "5")]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{typo} was accepted");
        assert!(stderr.contains(&format!("{typo} names no setting (did you mean {meant}?)")), "{typo}: {stderr}");
    }
    // Other programs' variables are theirs: the CLI's, the runner's, the tests'.
    let effective = print_config(&[
        var("RIVET_SERVER", "http://elsewhere:1"),
        var("RIVET_RUNNER_CAPACITY", "4"),
        var("RIVET_TEST_DATABASE_URL", "postgres://x"),
    ]);
    assert_eq!(effective["listen"], json!("127.0.0.1:7420"));
}

#[test]
fn print_config_never_prints_a_secret() {
    let key = "5ec12e75ec12e75ec12e75ec12e75ec12e75ec12e75ec12e75ec12e75ec12e7a";
    let secrets = ["s3cret-api", "s3cret-registration", "s3cret-runner", "pg-pa55", "redis-pa55", key];
    let output = orchestrator(
        &["--print-config"],
        &[
            var("RIVET_AUTH__API_TOKENS", r#"["s3cret-api"]"#),
            var("RIVET_AUTH__REGISTRATION_TOKENS", r#"["s3cret-registration"]"#),
            var("RIVET_AUTH__RUNNER_TOKENS", r#"["s3cret-runner"]"#),
            var("RIVET_DATABASE_URL", "postgres://rivet:pg-pa55@db/rivet"),
            var("RIVET_REDIS_URL", "redis://:redis-pa55@cache:6379"),
            var("RIVET_SECRETS__KEY", key),
            var("RIVET_SECRETS__PREVIOUS_KEYS", &format!("[\"{key}\"]")),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for secret in secrets {
        assert!(!stdout.contains(secret), "--print-config printed the secret `{secret}`:\n{stdout}");
    }
    let effective: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(effective["database_url"], json!(format!("postgres://rivet:{REDACTED}@db/rivet")));
    assert_eq!(effective["redis_url"], json!(format!("redis://:{REDACTED}@cache:6379")));
    assert_eq!(effective["auth"]["api_tokens"], json!([REDACTED]));
    assert_eq!(effective["auth"]["registration_tokens"], json!([REDACTED]));
    assert_eq!(effective["auth"]["runner_tokens"], json!([REDACTED]));
    assert_eq!(effective["secrets"]["key"], json!(REDACTED));
    assert_eq!(effective["secrets"]["previous_keys"], json!([REDACTED]));
}

#[test]
fn an_exposed_listener_needs_tls_and_authentication() {
    let output = orchestrator(&["--print-config"], &[var("RIVET_LISTEN", "0.0.0.0:7421")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "an open, plain-text listener on 0.0.0.0 was accepted");
    assert!(stderr.contains("refusing to listen on 0.0.0.0:7421 without TLS"), "{stderr}");
    assert!(stderr.contains("and authentication"), "{stderr}");

    // TLS alone is not enough, nor tokens alone.
    let pki = Pki::new();
    let tls = [var("RIVET_TLS__CERT_FILE", &pki.server_cert_str()), var("RIVET_TLS__KEY_FILE", &pki.server_key_str())];
    let mut vars = vec![var("RIVET_LISTEN", "0.0.0.0:7421")];
    vars.extend(tls.iter().cloned());
    let output = orchestrator(&["--print-config"], &vars);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("without authentication"), "{stderr}");

    // An API token alone leaves runners free to connect without a credential.
    vars.push(var("RIVET_AUTH__API_TOKENS", r#"["a"]"#));
    let output = orchestrator(&["--print-config"], &vars);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("without authentication"), "{stderr}");
    let mut registration = vars.clone();
    registration.push(var("RIVET_AUTH__REGISTRATION_TOKENS", r#"["r"]"#));
    assert_eq!(print_config(&registration)["listen"], json!("0.0.0.0:7421"));
    // The old name of registration tokens counts, through the environment too.
    vars.push(var("RIVET_AUTH__RUNNER_TOKENS", r#"["r"]"#));
    let effective = print_config(&vars);
    assert_eq!(effective["listen"], json!("0.0.0.0:7421"));
    assert_eq!(effective["auth"]["runner_tokens"], json!([REDACTED]));

    // `insecure = true` accepts the risk, and the server says so when it starts.
    let output =
        orchestrator(&["--print-config"], &[var("RIVET_LISTEN", "0.0.0.0:7421"), var("RIVET_INSECURE", "true")]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test]
async fn the_insecure_setting_warns_at_every_start() {
    let dir = TempDir::new().expect("tempdir");
    let mut child = tokio::process::Command::new(BINARY)
        .env_clear()
        .env("RIVET_LISTEN", "0.0.0.0:0")
        .env("RIVET_INSECURE", "true")
        .env("RIVET_DATABASE_URL", format!("sqlite://{}/rivet.db?mode=rwc", dir.path().display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let warned = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("INSECURE: serving off loopback without TLS or authentication") {
                return true;
            }
        }
        false
    })
    .await;
    let _ = child.kill().await;
    assert_eq!(warned, Ok(true), "no insecure warning at start");
}

/// A throw-away certificate authority with a server certificate for `localhost` and a
/// client certificate, written as PEM files.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new().expect("tempdir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key")).expect("CA");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write CA");
        for (name, names) in [("server", vec!["localhost".to_owned()]), ("client", vec!["runner".to_owned()])] {
            let key = KeyPair::generate().expect("key");
            let cert = CertificateParams::new(names).expect("params").signed_by(&key, &ca).expect("sign");
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).expect("write certificate");
            std::fs::write(dir.path().join(format!("{name}-key.pem")), key.serialize_pem()).expect("write key");
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca_str(&self) -> String {
        self.path("ca.pem").display().to_string()
    }

    fn server_cert_str(&self) -> String {
        self.path("server.pem").display().to_string()
    }

    fn server_key_str(&self) -> String {
        self.path("server-key.pem").display().to_string()
    }

    fn client(&self) -> (PathBuf, PathBuf) {
        (self.path("client.pem"), self.path("client-key.pem"))
    }
}

async fn tls_cluster(pki: &Pki, require_runner_certificate: bool) -> Cluster {
    let (cert, key, ca) = (pki.path("server.pem"), pki.path("server-key.pem"), pki.path("ca.pem"));
    Cluster::with(Backend::Sqlite, 1, move |config| {
        config.tls.cert_file = Some(cert.clone());
        config.tls.key_file = Some(key.clone());
        config.tls.client_ca_file = Some(ca.clone());
        config.tls.require_runner_certificate = require_runner_certificate;
    })
    .await
}

pub(crate) async fn list_pipelines(url: &str, tls: ClientTls<'_>) -> Result<pb::ListPipelinesResponse, String> {
    let channel = endpoint(url, tls)
        .map_err(|err| err.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|err| format!("{err:?}"))?;
    PipelineServiceClient::new(channel)
        .list_pipelines(ListPipelinesRequest::default())
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| format!("{status:?}"))
}

#[tokio::test]
async fn a_plaintext_client_cannot_talk_to_a_tls_server() {
    let pki = Pki::new();
    let cluster = tls_cluster(&pki, false).await;
    let port = cluster.addr(0).port();
    let https = format!("https://localhost:{port}");
    let ca = pki.path("ca.pem");

    let trusted = ClientTls { ca_file: Some(&ca), ..ClientTls::default() };
    list_pipelines(&https, trusted).await.expect("a client trusting the CA is served");

    let plain = list_pipelines(&format!("http://localhost:{port}"), ClientTls::default()).await;
    assert!(plain.is_err(), "a plain-text client was served by a TLS server: {plain:?}");

    // The server's certificate is not signed by a public root: without the CA file the
    // client refuses it.
    let untrusted = list_pipelines(&https, ClientTls::default()).await;
    let err = untrusted.expect_err("an unknown issuer is refused");
    assert!(err.contains("UnknownIssuer") || err.contains("invalid peer certificate"), "{err}");
}

/// Opens a runner stream and returns the first answer: a welcome, or the refusal.
async fn runner_hello(url: &str, tls: ClientTls<'_>) -> Result<pb::RunnerWelcome, tonic::Status> {
    let channel = endpoint(url, tls).expect("endpoint").connect().await.expect("TLS connects");
    let id = Uuid::new_v4();
    let hello = pb::RunnerHello {
        protocol_versions: vec![rivet_core::job::PROTOCOL_VERSION],
        runner_id: id.to_string(),
        name: "tls-runner".to_owned(),
        labels: BTreeMap::new().into_iter().collect(),
        capacity: 1,
        ..pb::RunnerHello::default()
    };
    let message = ConnectRequest { body: Some(connect_request::Body::Hello(hello)) };
    let mut inbound = RunnerServiceClient::new(channel).connect(tokio_stream::iter(vec![message])).await?.into_inner();
    match inbound.message().await? {
        Some(pb::ConnectResponse { body: Some(connect_response::Body::Welcome(welcome)) }) => Ok(welcome),
        other => panic!("expected a welcome, got {other:?}"),
    }
}

#[tokio::test]
async fn mutual_tls_can_be_required_of_runners() {
    let pki = Pki::new();
    let cluster = tls_cluster(&pki, true).await;
    let url = format!("https://localhost:{}", cluster.addr(0).port());
    let ca = pki.path("ca.pem");
    let (cert, key) = pki.client();

    let anonymous = runner_hello(&url, ClientTls { ca_file: Some(&ca), ..ClientTls::default() }).await;
    let status = anonymous.expect_err("a runner without a client certificate is refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("client certificate"), "{status:?}");

    // Registration is a runner call too: no certificate, no credential.
    let channel = endpoint(&url, ClientTls { ca_file: Some(&ca), ..ClientTls::default() })
        .expect("endpoint")
        .connect()
        .await
        .expect("TLS connects");
    let request = pb::RegisterRunnerRequest { name: "no-certificate".into(), ..Default::default() };
    let status = RunnerServiceClient::new(channel).register_runner(request).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("client certificate"), "{status:?}");

    let identified = ClientTls { ca_file: Some(&ca), cert_file: Some(cert.as_path()), key_file: Some(key.as_path()) };
    let welcome = runner_hello(&url, identified).await.expect("a runner with a client certificate is welcomed");
    assert!(welcome.heartbeat_interval_ms > 0);

    // Users' clients need no certificate on the same server.
    list_pipelines(&url, ClientTls { ca_file: Some(&ca), ..ClientTls::default() }).await.expect("API served");
}

/// Waits until `child` logs "orchestrator serving" and returns the address it names.
pub(crate) async fn serving_addr(child: &mut tokio::process::Child) -> Result<String, String> {
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("orchestrator serving")
                && let Some(addr) = line.split("addr=").nth(1).and_then(|rest| rest.split_whitespace().next())
            {
                return Some(addr.to_owned());
            }
            seen.push(line);
        }
        None
    })
    .await;
    match found {
        Ok(Some(addr)) => Ok(addr),
        _ => {
            let mut stderr = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    tokio::io::AsyncReadExt::read_to_string(&mut err, &mut stderr),
                )
                .await;
            }
            Err(format!("{}\n{stderr}", seen.join("\n")))
        }
    }
}

/// A `redis-server` serving TLS only, on a free port, with the test PKI's server
/// certificate. Killed on drop.
struct TlsRedis {
    port: u16,
    _child: tokio::process::Child,
    _dir: TempDir,
}

impl TlsRedis {
    async fn start(pki: &Pki) -> TlsRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let dir = TempDir::new().expect("tempdir");
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--tls-cert-file", &pki.server_cert_str(), "--tls-key-file", &pki.server_key_str()])
            .args(["--tls-ca-cert-file", &pki.ca_str(), "--tls-auth-clients", "no"])
            .args(["--save", "", "--appendonly", "no", "--dir", &dir.path().display().to_string()])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "the TLS redis-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        TlsRedis { port, _child: child, _dir: dir }
    }
}

/// `rediss://` and `sslmode=require` work, and the Redis certificate is really checked:
/// without the private CA (SSL_CERT_FILE) the orchestrator refuses to start.
#[tokio::test]
async fn redis_and_postgres_urls_with_tls_work() {
    let pki = Pki::new();
    let redis = TlsRedis::start(&pki).await;
    let database = rivet_orchestrator::testing::fresh_database(Backend::Postgres).await;
    let separator = if database.url.contains('?') { '&' } else { '?' };
    let database_url = format!("{}{separator}sslmode=require", database.url);
    let redis_url = format!("rediss://localhost:{}", redis.port);
    let spawn = |trust_ca: bool| {
        let mut command = tokio::process::Command::new(BINARY);
        command
            .env_clear()
            .env("RIVET_LISTEN", "127.0.0.1:0")
            .env("RIVET_DATABASE_URL", &database_url)
            .env("RIVET_REDIS_URL", &redis_url)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if trust_ca {
            command.env("SSL_CERT_FILE", pki.ca_str());
        }
        command.spawn().expect("spawn rivet-orchestrator")
    };

    let mut untrusting = spawn(false);
    let refused = serving_addr(&mut untrusting).await.expect_err("an unverified Redis certificate was accepted");
    assert!(refused.contains("cannot connect to Redis"), "{refused}");

    let mut trusting = spawn(true);
    let addr = serving_addr(&mut trusting).await.expect("serves with TLS to PostgreSQL and Redis");
    let listed = list_pipelines(&format!("http://{addr}"), ClientTls::default()).await;
    assert!(listed.is_ok(), "{listed:?}");
    let _ = trusting.kill().await;
}

/// The real agent registers and connects over mutual TLS to an orchestrator that requires
/// it, and runs a job whose every line comes back.
#[tokio::test]
async fn the_runner_agent_speaks_mutual_tls() {
    use rivet_runner::agent::config::TlsFiles;
    use rivet_runner::agent::{Agent, AgentConfig, Stop};
    use std::sync::Arc;

    let pki = Pki::new();
    let (server_cert, server_key, client_ca) = (pki.path("server.pem"), pki.path("server-key.pem"), pki.path("ca.pem"));
    let cluster = Cluster::with(Backend::Sqlite, 1, move |config| {
        config.tls.cert_file = Some(server_cert.clone());
        config.tls.key_file = Some(server_key.clone());
        config.tls.client_ca_file = Some(client_ca.clone());
        config.tls.require_runner_certificate = true;
        config.auth.registration_tokens = vec!["register-over-tls".into()];
    })
    .await;
    let url = format!("https://localhost:{}", cluster.addr(0).port());
    let ca = pki.path("ca.pem");
    let (cert, key) = pki.client();
    let state = TempDir::new().expect("tempdir");
    let config = AgentConfig {
        orchestrator_url: url.clone(),
        registration_token: Some("register-over-tls".into()),
        capacity: 1,
        state_dir: state.path().to_owned(),
        tls: TlsFiles { ca_file: Some(ca.clone()), cert_file: Some(cert), key_file: Some(key) },
        ..AgentConfig::default()
    };
    let runner = crate::resilience::ScriptedRunner { lines: 120, pause: Duration::from_millis(1) };
    let agent = Agent::new(config, Arc::new(runner)).expect("agent");
    let stop = Stop::default();
    let running = stop.clone();
    let task = tokio::spawn(async move { agent.run(running).await });

    let channel = endpoint(&url, ClientTls { ca_file: Some(&ca), ..ClientTls::default() })
        .expect("endpoint")
        .connect()
        .await
        .expect("TLS connects");
    let mut api = crate::support::Api::over(channel);
    api.create(&crate::support::pipeline_source("over-tls", &[])).await;
    let job = api.launch("over-tls", &[("image", "x")]).await.expect("launch");
    api.wait_for(&job.id, pb::JobState::Succeeded).await;
    let lines = api.follow(&job.id, 1).await;
    assert_eq!(lines.len(), 120, "every line came back over TLS");
    assert!(state.path().join("credential.json").exists(), "the agent registered and kept its credential");
    stop.now.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
}
