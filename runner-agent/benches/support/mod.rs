//! Bench support: a Podman service and the test image, an executor configuration of the
//! bench's own, an orchestrator served in this process, and measuring helpers. A compact
//! cousin of `tests/executor/support.rs`, which benches cannot import.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use podman_api::Podman;
use rivet_orchestrator::config::{Config, EvaluationConfig};
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
use rivet_runner::executor::service::{self, Service};
use tonic::transport::Channel;
use uuid::Uuid;

pub const TEST_IMAGE: &str = "localhost/rivet-test:latest";

/// The system Podman socket, used when it answers.
const SYSTEM_SOCKET: &str = "unix:///run/podman/podman.sock";

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
            podman_socket: socket,
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

/// A client of the Podman service the runner itself would use (the system socket, the
/// usual others, else a private service that lives as long as the bench's `Env`).
async fn podman() -> (Podman, String, Option<Service>) {
    let (socket, service) =
        service::find_or_start(SYSTEM_SOCKET, &std::env::temp_dir()).await.expect("a podman service");
    let podman = Podman::new(&socket).expect("a podman client");
    (podman, socket, service)
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
        // This bench cannot serve as an evaluation worker; the runner binary can.
        let evaluation = EvaluationConfig {
            worker_program: Some(env!("CARGO_BIN_EXE_rivet-runner").into()),
            ..EvaluationConfig::default()
        };
        let config = Config { listen: SocketAddr::from(([127, 0, 0, 1], 0)), evaluation, ..Config::default() };
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

// The measuring helpers are the orchestrator bench's: one copy for both bench binaries.
#[path = "../../../orchestrator/benches/support/measure.rs"]
mod measure;

pub use measure::{load_context, millis, rate, selected, size, spread, table};
