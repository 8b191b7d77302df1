//! Telemetry end to end, with the real processes: a `rivet-orchestrator` on PostgreSQL and
//! Redis and a `rivet-runner` on podman, both exporting spans over OTLP to a collector this
//! test serves (the OTLP `TraceService` from `opentelemetry-proto`) and serving `/metrics`.
//! A job launched with a client's `traceparent` must come back as one trace of spans from
//! both processes, linked parent to child, with nothing secret in any attribute; the
//! metrics of both must count what the job did, while it ran and after.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../faults/cluster.rs"]
mod cluster;
#[path = "../executor/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use rivet_proto::v1::pipeline_service_client::PipelineServiceClient;
use rivet_proto::v1::secret_service_client::SecretServiceClient;
use rivet_proto::v1::{self as pb};
use rivet_telemetry::metrics::{Scrape, scrape};

use crate::cluster::{Postgres, Redis, Replica, ReplicaConfig, Runner, RunnerConfig, free_port, job};

/// How long any one thing may take to happen before the test gives up.
pub const PATIENCE: Duration = Duration::from_secs(90);

const SECRET: &str = "T3lemetry-S3cret-Value";
/// The client's trace: the job's spans must join it.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

const PIPELINE: &str = r#"return pipeline.define {
  name = "traced",
  secrets = { "TOKEN" },
  stages = {
    { name = "build", script = function()
      process.run { cmd = "sh", args = { "-c", "echo building with $T; sleep 2" }, env = { T = secret.get("TOKEN") } }
      process.run { cmd = "echo", args = { "token is " .. secret.get("TOKEN") } }
    end },
    { name = "test", script = function()
      process.run { cmd = "true" }
    end },
  },
}"#;

/// One exported span, as the collector received it.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: BTreeMap<String, String>,
}

/// An OTLP collector that keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let resource_attributes =
                resource.resource.map(|resource| attributes(&resource.attributes)).unwrap_or_default();
            let service = resource_attributes.get("service.name").cloned().unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push(Span {
                        service: service.clone(),
                        name: span.name,
                        trace_id: hex::encode(&span.trace_id),
                        span_id: hex::encode(&span.span_id),
                        parent: hex::encode(&span.parent_span_id),
                        attributes: attributes(&span.attributes),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

fn attributes(list: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|pair| {
            let value = match pair.value.as_ref().and_then(|value| value.value.as_ref()) {
                Some(Value::StringValue(text)) => text.clone(),
                Some(Value::BoolValue(flag)) => flag.to_string(),
                Some(Value::IntValue(number)) => number.to_string(),
                Some(Value::DoubleValue(number)) => number.to_string(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            (pair.key.clone(), value)
        })
        .collect()
}

impl Collector {
    async fn serve(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        addr
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

/// The spans of `trace` named `name`.
fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|span| span.name == name).collect()
}

/// The one span of `trace` named `name`.
fn one<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "expected one `{name}` span, got {found:#?}");
    found[0]
}

async fn metrics(addr: SocketAddr) -> Scrape {
    Scrape::parse(&scrape(addr).await.expect("scrape /metrics")).expect("the exposition parses")
}

/// PostgreSQL, Redis, one orchestrator and one runner, both serving `/metrics` and, when
/// `otlp` is given, exporting spans there.
struct Cluster {
    orchestrator_metrics: SocketAddr,
    runner_metrics: SocketAddr,
    replica: Replica,
    _runner: Runner,
    _redis: Redis,
    _postgres: Postgres,
    _env: support::Env,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(otlp: Option<String>) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let env = support::Env::new().await;
        let postgres = Postgres::start(dir.path());
        let redis = Redis::start(dir.path());
        let orchestrator_metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let runner_metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let exporting = |variable: &str| match &otlp {
            // The standard variable for one process, Rivet's own setting for the other.
            Some(otlp) => {
                vec![("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "200".to_owned()), (variable.to_owned(), otlp.clone())]
            }
            None => Vec::new(),
        };
        let mut orchestrator_env = exporting("OTEL_EXPORTER_OTLP_ENDPOINT");
        orchestrator_env.push(("RIVET_METRICS__LISTEN".to_owned(), orchestrator_metrics.to_string()));
        orchestrator_env.push((
            "RIVET_SECRETS__KEY".to_owned(),
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_owned(),
        ));
        let config = ReplicaConfig {
            database_url: postgres.url(),
            redis_url: redis.url(),
            lease_ttl_ms: 3_000,
            heartbeat_interval_ms: 500,
            env: orchestrator_env,
        };
        let replica = Replica::start(&config, "traced", dir.path()).await;
        let mut runner_env = exporting("RIVET_RUNNER_TELEMETRY__OTLP_ENDPOINT");
        runner_env.push(("RIVET_RUNNER_METRICS__LISTEN".to_owned(), runner_metrics.to_string()));
        let state = dir.path().join("runner-state");
        let runner = Runner::start(&RunnerConfig {
            orchestrator: replica.addr,
            state_dir: &state,
            executor: &env.config,
            log: dir.path().join("runner.log"),
            env: runner_env,
        });
        let channel = replica.channel().await;
        let request = pb::SetSecretRequest { name: "TOKEN".into(), pipeline: String::new(), value: SECRET.into() };
        SecretServiceClient::new(channel.clone()).set_secret(request).await.expect("set the secret");
        let request = pb::CreatePipelineRequest { source: PIPELINE.to_owned(), file_name: "traced.lua".to_owned() };
        PipelineServiceClient::new(channel).create_pipeline(request).await.expect("create the pipeline");
        Cluster {
            orchestrator_metrics,
            runner_metrics,
            replica,
            _runner: runner,
            _redis: redis,
            _postgres: postgres,
            _env: env,
            dir,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_one_trace_across_orchestrator_and_runner_and_its_metrics_count_it() {
    let collector = Collector::default();
    let otlp = format!("http://{}", collector.serve().await);
    let cluster = Cluster::start(Some(otlp)).await;
    let (orchestrator_metrics, runner_metrics, replica) =
        (cluster.orchestrator_metrics, cluster.runner_metrics, &cluster.replica);
    let before = metrics(orchestrator_metrics).await;
    assert_eq!(before.sum("rivet_jobs_launched_total", &[]), 0.0);

    let mut jobs = replica.jobs().await;
    let mut launch = tonic::Request::new(pb::LaunchJobRequest {
        pipeline: "traced".to_owned(),
        inputs: Default::default(),
        idempotency_key: String::new(),
    });
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    launch.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
    let launched = jobs.launch_job(launch).await.expect("launch").into_inner().job.expect("a job");
    assert_eq!(launched.trace_id, CLIENT_TRACE, "the job joins the client's trace");
    let id = launched.id;

    // While it runs: the runner counts one running job, the orchestrator one launch.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while job(&mut jobs, &id).await.state() != pb::JobState::Running {
        assert!(tokio::time::Instant::now() < deadline, "job {id} never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let during = metrics(runner_metrics).await;
    assert_eq!(during.sum("rivet_runner_jobs_running", &[]), 1.0);
    assert_eq!(metrics(orchestrator_metrics).await.sum("rivet_jobs_launched_total", &[]), 1.0);

    let ended = loop {
        let current = job(&mut jobs, &id).await;
        if current.end_time.is_some() {
            break current;
        }
        assert!(tokio::time::Instant::now() < deadline, "job {id} never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ended.state(), pb::JobState::Succeeded, "{}", ended.message);
    assert_eq!(ended.trace_id, CLIENT_TRACE);

    // After: every counter moved by what the job did, and no more.
    let after = metrics(orchestrator_metrics).await;
    assert_eq!(after.sum("rivet_jobs_launched_total", &[]), 1.0);
    assert_eq!(after.sum("rivet_jobs_finished_total", &[("state", "succeeded")]), 1.0);
    assert_eq!(after.sum("rivet_jobs_finished_total", &[]), 1.0);
    assert_eq!(after.sum("rivet_assignment_latency_seconds_count", &[]), 1.0);
    assert_eq!(after.sum("rivet_job_duration_seconds_count", &[("state", "succeeded")]), 1.0);
    assert!(after.sum("rivet_log_lines_ingested_total", &[]) >= 2.0, "the two echo lines were ingested");
    assert!(after.sum("rivet_log_bytes_ingested_total", &[]) > 0.0);
    assert_eq!(after.sum("rivet_lease_expiries_total", &[]), 0.0);
    assert_eq!(after.sum("rivet_jobs_requeued_total", &[]), 0.0);
    assert_eq!(after.sum("rivet_runners_connected", &[]), 1.0);
    let launches = [("method", "/rivet.v1.JobService/LaunchJob"), ("code", "OK")];
    assert_eq!(after.sum("rivet_rpc_duration_seconds_count", &launches), 1.0);
    let runner = metrics(runner_metrics).await;
    assert_eq!(runner.sum("rivet_runner_jobs_running", &[]), 0.0);
    assert_eq!(runner.sum("rivet_runner_jobs_finished_total", &[("state", "succeeded")]), 1.0);
    assert_eq!(runner.sum("rivet_stage_duration_seconds_count", &[("state", "succeeded")]), 2.0);
    assert_eq!(runner.sum("rivet_podman_call_duration_seconds_count", &[("call", "create")]), 3.0);
    assert_eq!(runner.sum("rivet_podman_call_duration_seconds_count", &[("call", "start")]), 3.0);
    assert_eq!(runner.sum("rivet_runner_reconnects_total", &[]), 0.0);
    for name in after.names().iter().chain(runner.names().iter()) {
        assert!(!name.contains(&id), "a job id became part of a metric: {name}");
    }
    // Every series the shipped dashboard and alert rules ask for is one these endpoints
    // serve, by the names their declarations give it.
    let mut served = std::collections::BTreeSet::new();
    for addr in [orchestrator_metrics, runner_metrics] {
        let text = scrape(addr).await.expect("scrape");
        for line in text.lines() {
            let Some(declared) = line.strip_prefix("# TYPE ") else { continue };
            let (name, kind) = declared.split_once(' ').expect("# TYPE name kind");
            match kind {
                "counter" => served.extend([format!("{name}_total")]),
                "histogram" => served.extend(["_bucket", "_count", "_sum"].map(|suffix| format!("{name}{suffix}"))),
                _ => served.extend([name.to_owned()]),
            }
        }
    }
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
    for file in ["grafana/rivet-dashboard.json", "prometheus/rules.yml"] {
        let text = std::fs::read_to_string(format!("{deploy}/{file}")).expect("a deploy file");
        let mut asked: Vec<&str> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|word| word.starts_with("rivet_"))
            .collect();
        asked.sort_unstable();
        asked.dedup();
        assert!(!asked.is_empty(), "{file} asks for no Rivet metric");
        for name in asked {
            assert!(served.contains(name), "{file} asks for `{name}`, which neither endpoint serves");
        }
    }

    // The trace: every span of both processes, once both exported them.
    let wanted = ["launch", "queued", "dispatch", "job", "stage", "process", "finish"];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let spans = loop {
        let spans: Vec<Span> = collector.spans().into_iter().filter(|span| span.trace_id == CLIENT_TRACE).collect();
        let complete = wanted.iter().all(|name| !named(&spans, name).is_empty())
            && named(&spans, "process").len() == 3
            && named(&spans, "stage").len() == 2;
        if complete {
            break spans;
        }
        assert!(tokio::time::Instant::now() < deadline, "the trace never arrived whole: {spans:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let server = named(&spans, "/rivet.v1.JobService/LaunchJob");
    assert_eq!(server.len(), 1, "the LaunchJob server span: {spans:#?}");
    let server = server[0];
    assert_eq!(server.parent, CLIENT_SPAN, "the server span is a child of the client's");
    assert_eq!(server.service, "rivet-orchestrator");
    assert_eq!(server.attributes.get("rpc.grpc.status_code").map(String::as_str), Some("0"));
    let launch = one(&spans, "launch");
    assert_eq!(launch.parent, server.span_id);
    assert_eq!(launch.attributes.get("job"), Some(&id));
    let queued = one(&spans, "queued");
    assert_eq!(queued.parent, launch.span_id);
    let dispatch = one(&spans, "dispatch");
    assert_eq!(dispatch.parent, launch.span_id);
    let finish = one(&spans, "finish");
    assert_eq!(finish.parent, launch.span_id);
    assert_eq!(finish.attributes.get("state").map(String::as_str), Some("succeeded"));
    for span in [launch, queued, dispatch, finish] {
        assert_eq!(span.service, "rivet-orchestrator", "{span:?}");
    }

    // Across the process boundary: the runner's job span is the dispatch span's child.
    let job_span = one(&spans, "job");
    assert_eq!(job_span.service, "rivet-runner");
    assert_eq!(job_span.parent, dispatch.span_id);
    assert_eq!(job_span.attributes.get("state").map(String::as_str), Some("succeeded"));
    let stages = named(&spans, "stage");
    let stage = |name: &str| {
        *stages.iter().find(|span| span.attributes.get("stage").map(String::as_str) == Some(name)).unwrap()
    };
    let (build, test) = (stage("build"), stage("test"));
    for stage in [build, test] {
        assert_eq!(stage.parent, job_span.span_id);
        assert_eq!(stage.attributes.get("state").map(String::as_str), Some("succeeded"));
        assert!(stage.attributes.get("image").is_some_and(|image| !image.is_empty()), "{stage:?}");
    }
    let processes = named(&spans, "process");
    let argv0 = |span: &Span| span.attributes.get("argv0").cloned().unwrap_or_default();
    let mut under_build: Vec<String> =
        processes.iter().filter(|span| span.parent == build.span_id).map(|span| argv0(span)).collect();
    under_build.sort();
    assert_eq!(under_build, ["echo", "sh"]);
    let under_test: Vec<String> =
        processes.iter().filter(|span| span.parent == test.span_id).map(|span| argv0(span)).collect();
    assert_eq!(under_test, ["true"]);
    for process in &processes {
        assert_eq!(process.attributes.get("exit_code").map(String::as_str), Some("0"), "{process:?}");
        assert!(process.attributes.contains_key("duration_ms"), "{process:?}");
    }

    // Nothing secret anywhere: not the value, not the arguments that carried it.
    for span in collector.spans() {
        for (key, value) in &span.attributes {
            assert!(!value.contains(SECRET), "span `{}` attribute `{key}` holds the secret", span.name);
            assert!(!value.contains("token is"), "span `{}` attribute `{key}` holds a process argument", span.name);
        }
    }
}

/// Asks Prometheus's HTTP API for `query`; the value of each series, by its labels.
async fn query(prometheus: SocketAddr, query: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let url = format!("http://{prometheus}/api/v1/query");
    let Ok(response) = reqwest::Client::new().get(url).query(&[("query", query)]).send().await else {
        return Vec::new();
    };
    let Ok(body) = response.bytes().await else { return Vec::new() };
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(&body) else { return Vec::new() };
    let series = answer["data"]["result"].as_array().cloned().unwrap_or_default();
    series
        .iter()
        .map(|series| {
            let labels = series["metric"]
                .as_object()
                .map(|labels| {
                    labels.iter().map(|(key, value)| (key.clone(), value.as_str().unwrap_or("").to_owned())).collect()
                })
                .unwrap_or_default();
            let value = series["value"][1].as_str().and_then(|value| value.parse().ok()).unwrap_or(f64::NAN);
            (labels, value)
        })
        .collect()
}

/// Debian's `prometheus` (installed by `.ci/run`) scrapes both endpoints as an operator
/// would, and answers queries about the job: the exposition is what a real Prometheus
/// reads, not only what this repository's parser accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_both_endpoints() {
    let Ok(binary) = which_prometheus() else {
        // .ci/run installs it: there, a missing binary is a failure, not a skip.
        assert!(std::env::var_os("CI").is_none(), "no `prometheus` binary, which .ci/run installs");
        eprintln!("skipped: no `prometheus` binary (apt-get install prometheus)");
        return;
    };
    let cluster = Cluster::start(None).await;
    let mut jobs = cluster.replica.jobs().await;
    let request = pb::LaunchJobRequest {
        pipeline: "traced".to_owned(),
        inputs: Default::default(),
        idempotency_key: String::new(),
    };
    let id = jobs.launch_job(request).await.expect("launch").into_inner().job.expect("a job").id;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while job(&mut jobs, &id).await.end_time.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "job {id} never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = cluster.dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: orchestrator\n    static_configs: [{{ targets: ['{}'] }}]\n  - job_name: runner\n    static_configs: [{{ targets: ['{}'] }}]\n",
            cluster.orchestrator_metrics, cluster.runner_metrics
        ),
    )
    .unwrap();
    let log = std::fs::File::create(cluster.dir.path().join("prometheus.log")).unwrap();
    let mut prometheus = tokio::process::Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", cluster.dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address={listen}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start prometheus");

    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let up = query(listen, "up").await;
        let finished = query(listen, "rivet_jobs_finished_total").await;
        let runner = query(listen, "rivet_runner_jobs_finished_total").await;
        let both_up = up.len() == 2 && up.iter().all(|(_, value)| *value == 1.0);
        let counted = finished.iter().any(|(labels, value)| {
            labels.get("state").map(String::as_str) == Some("succeeded")
                && labels.get("job").map(String::as_str) == Some("orchestrator")
                && *value == 1.0
        }) && runner
            .iter()
            .any(|(labels, value)| labels.get("state").map(String::as_str) == Some("succeeded") && *value == 1.0);
        if both_up && counted {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "prometheus never saw both targets up and the job counted: up {up:?}, finished {finished:?}, runner {runner:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A histogram, through PromQL, as the dashboard asks for it (a rate needs two scrapes).
    let quantile = "histogram_quantile(0.5, sum(rate(rivet_rpc_duration_seconds_bucket[1m])) by (le))";
    loop {
        let latency = query(listen, quantile).await;
        if latency.len() == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "prometheus never answered {quantile}: {latency:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = prometheus.kill().await;
}

/// The `prometheus` binary on the PATH.
fn which_prometheus() -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("prometheus"))
        .find(|path| path.is_file())
        .ok_or(())
}

/// The shipped Prometheus configuration and alert rules are what `promtool` (Debian's
/// `prometheus` package) accepts, with the rules where the configuration looks for them.
#[test]
fn the_shipped_prometheus_configuration_and_rules_are_valid() {
    let Ok(prometheus) = which_prometheus() else {
        // .ci/run installs it: there, a missing binary is a failure, not a skip.
        assert!(std::env::var_os("CI").is_none(), "no `prometheus` binary, which .ci/run installs");
        eprintln!("skipped: no `prometheus` binary (apt-get install prometheus)");
        return;
    };
    let promtool = prometheus.with_file_name("promtool");
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus");
    let dir = tempfile::tempdir().unwrap();
    // The compose file mounts deploy/prometheus at /etc/prometheus.
    let config = std::fs::read_to_string(deploy.join("prometheus.yml")).unwrap();
    assert!(config.contains("/etc/prometheus/rules.yml"), "the configuration names its rules");
    std::fs::write(dir.path().join("prometheus.yml"), config.replace("/etc/prometheus/rules.yml", "rules.yml"))
        .unwrap();
    std::fs::copy(deploy.join("rules.yml"), dir.path().join("rules.yml")).unwrap();
    for args in [["check", "config", "prometheus.yml"], ["check", "rules", "rules.yml"]] {
        let output = std::process::Command::new(&promtool).args(args).current_dir(dir.path()).output().unwrap();
        assert!(
            output.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
