//! Bench support: a Podman service and the test image, an executor configuration of the
//! bench's own, an orchestrator served in this process, and measuring helpers. A compact
//! cousin of `tests/executor/support.rs`, which benches cannot import.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use podman_api::Podman;
use rivet_orchestrator::config::Config;
use rivet_orchestrator::coord::{MemoryCoordinator, RedisCoordinator};
use rivet_orchestrator::domain::coord::Coordinator;
use rivet_orchestrator::domain::store::Store;
use rivet_orchestrator::server::{self, RunningServer};
use rivet_orchestrator::storage::testing::{TestDb, fresh_postgres, fresh_sqlite};
use rivet_proto::v1::job_service_client::JobServiceClient;
use rivet_proto::v1::log_service_client::LogServiceClient;
use rivet_proto::v1::pipeline_service_client::PipelineServiceClient;
use rivet_proto::v1::{self as pb};
use rivet_runner::config::ExecutorConfig;
use tokio::time::Instant;
use tonic::transport::Channel;
use uuid::Uuid;

pub const TEST_IMAGE: &str = "localhost/rivet-test:latest";

/// The system Podman socket, used when it answers.
const SYSTEM_SOCKET: &str = "/run/podman/podman.sock";

/// A Podman service for the bench, and a workspace root of its own.
pub struct Env {
    pub podman: Podman,
    pub config: ExecutorConfig,
    _workspaces: tempfile::TempDir,
    _service: Option<Service>,
}

impl Env {
    pub async fn new() -> Env {
        ensure_image();
        let (podman, socket, service) = podman().await;
        let workspaces = tempfile::tempdir().expect("a temporary directory");
        let config = ExecutorConfig {
            podman_socket: format!("unix://{}", socket.display()),
            workspace_root: workspaces.path().join("workspaces"),
            instance: format!("bench-{}", Uuid::new_v4()),
            ..ExecutorConfig::default()
        };
        Env { podman, config, _workspaces: workspaces, _service: service }
    }
}

/// Builds the test image when it is missing.
fn ensure_image() {
    let present =
        Command::new("podman").args(["image", "exists", TEST_IMAGE]).status().is_ok_and(|status| status.success());
    if !present {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/test-image/build.sh");
        let status = Command::new(&script).status().expect("run deploy/test-image/build.sh");
        assert!(status.success(), "deploy/test-image/build.sh failed");
    }
}

/// A `podman system service` started for the bench, stopped when dropped.
struct Service {
    child: Child,
    socket: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The system Podman service when its socket answers, else one started for the bench.
async fn podman() -> (Podman, PathBuf, Option<Service>) {
    if Path::new(SYSTEM_SOCKET).exists() {
        let podman = Podman::unix(SYSTEM_SOCKET);
        if podman.ping().await.is_ok() {
            return (podman, PathBuf::from(SYSTEM_SOCKET), None);
        }
    }
    let socket = PathBuf::from(format!("/tmp/rivet-bench-podman-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&socket);
    let child = Command::new("podman")
        .args(["system", "service", "--time=0"])
        .arg(format!("unix://{}", socket.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start podman system service");
    let service = Service { child, socket: socket.clone() };
    let podman = Podman::unix(&socket);
    let start = Instant::now();
    while !(socket.exists() && podman.ping().await.is_ok()) {
        assert!(start.elapsed() < Duration::from_secs(20), "podman system service did not start");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    (podman, socket, Some(service))
}

/// Which backends the in-process orchestrator runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn label(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres+redis",
            Backend::Sqlite => "sqlite+memory",
        }
    }

    /// The backends named by `RIVET_BENCH_BACKENDS` (`sqlite` by default: the embedded mode,
    /// where a runner and its orchestrator share a machine).
    pub fn selected() -> Vec<Backend> {
        let names = std::env::var("RIVET_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite".to_owned());
        names
            .split(',')
            .filter_map(|name| match name.trim() {
                "postgres" => Some(Backend::Postgres),
                "sqlite" => Some(Backend::Sqlite),
                "" => None,
                other => panic!("RIVET_BENCH_BACKENDS: unknown backend `{other}` (postgres, sqlite)"),
            })
            .collect()
    }
}

/// An orchestrator served in this process on a fresh database, with the default settings.
pub struct Orchestrator {
    pub addr: SocketAddr,
    running: Option<RunningServer>,
    _db: Option<TestDb>,
    _dir: Option<tempfile::TempDir>,
}

impl Orchestrator {
    pub async fn start(backend: Backend) -> Orchestrator {
        let (store, coord, db, dir): (_, Arc<dyn Coordinator>, _, _) = match backend {
            Backend::Postgres => {
                let (store, db) = fresh_postgres().await;
                let redis = std::env::var("RIVET_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
                let namespace = format!("rivet-bench-{}", Uuid::new_v4().simple());
                let coord = RedisCoordinator::connect(&redis, &namespace).await.expect("redis");
                (store, Arc::new(coord), Some(db), None)
            }
            Backend::Sqlite => {
                let (store, dir) = fresh_sqlite().await;
                (store, Arc::new(MemoryCoordinator::new()), None, Some(dir))
            }
        };
        let store: Arc<dyn Store> = Arc::new(store);
        let config = Config { listen: SocketAddr::from(([127, 0, 0, 1], 0)), ..Config::default() };
        let listener = tokio::net::TcpListener::bind(config.listen).await.expect("bind");
        let running = server::start(config, store, coord, listener).await.expect("orchestrator starts");
        Orchestrator { addr: running.addr, running: Some(running), _db: db, _dir: dir }
    }
}

impl Drop for Orchestrator {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
        }
    }
}

/// The user-facing clients the bench needs.
pub struct Api {
    pipelines: PipelineServiceClient<Channel>,
    jobs: JobServiceClient<Channel>,
    logs: LogServiceClient<Channel>,
}

impl Api {
    pub async fn connect(addr: SocketAddr) -> Api {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        Api {
            pipelines: PipelineServiceClient::new(channel.clone()),
            jobs: JobServiceClient::new(channel.clone()),
            logs: LogServiceClient::new(channel),
        }
    }

    pub async fn create(&mut self, source: &str) {
        let request = pb::CreatePipelineRequest { source: source.to_owned(), file_name: "bench.lua".to_owned() };
        self.pipelines.create_pipeline(request).await.expect("create pipeline");
    }

    /// Launches `pipeline`; the job's id.
    pub async fn launch(&mut self, pipeline: &str) -> String {
        let request = pb::LaunchJobRequest {
            pipeline: pipeline.to_owned(),
            inputs: Default::default(),
            idempotency_key: String::new(),
        };
        self.jobs.launch_job(request).await.expect("launch").into_inner().job.expect("job").id
    }

    /// Follows `job`'s log from its first line.
    pub async fn follow(&mut self, job: &str) -> tonic::Streaming<pb::StreamLogsResponse> {
        let request = pb::StreamLogsRequest { job_id: job.to_owned(), from_sequence: 1, follow: true };
        self.logs.stream_logs(request).await.expect("stream logs").into_inner()
    }

    /// The job.
    pub async fn job(&mut self, job: &str) -> pb::Job {
        let request = pb::GetJobRequest { job_id: job.to_owned() };
        self.jobs.get_job(request).await.expect("get job").into_inner().job.expect("job")
    }
}

/// A size from the environment variable `name`, or `default`.
pub fn size(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value.trim().parse().unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
        Err(_) => default,
    }
}

/// Whether the scenario `name` should run (bench arguments or `RIVET_BENCH_ONLY` pick some).
pub fn selected(name: &str) -> bool {
    let mut wanted: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with('-')).collect();
    if let Ok(only) = std::env::var("RIVET_BENCH_ONLY") {
        wanted.extend(only.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()));
    }
    wanted.is_empty() || wanted.iter().any(|w| name.contains(w.as_str()))
}

/// The median, minimum and maximum of `samples`.
pub fn spread(samples: &[Duration]) -> (Duration, Duration, Duration) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let mid = sorted.len() / 2;
    let median = if sorted.len().is_multiple_of(2) { (sorted[mid - 1] + sorted[mid]) / 2 } else { sorted[mid] };
    (median, sorted[0], sorted[sorted.len() - 1])
}

/// A duration in milliseconds.
pub fn millis(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1_000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1_000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// `count` per second over `elapsed`, rounded.
pub fn rate(count: f64, elapsed: Duration) -> String {
    format!("{:.0}", count / elapsed.as_secs_f64())
}

/// Prints a table: a title, a header row, cells right-aligned but the first.
pub fn table(title: &str, headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, width))| if i == 0 { format!("{cell:<width$}") } else { format!("{cell:>width$}") })
            .collect();
        println!("  {}", padded.join("  "));
    };
    println!("\n{title}");
    line(headers.iter().map(|h| h.to_string()).collect());
    println!("  {}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
    for row in rows {
        line(row.clone());
    }
}

/// The machine's CPUs and load averages, to read every figure against.
pub fn load_context() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let averages: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{cpus} CPUs, load average {} (1, 5, 15 min)", averages.join(" "))
}
