//! Bench support: an orchestrator on real backends served over loopback gRPC, the
//! user-facing clients, and a simulated runner that speaks the runner protocol message by
//! message. A compact cousin of `tests/api/support.rs`, which benches cannot import.

pub mod measure;
pub mod otlp;
pub mod process;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rivet_orchestrator::config::{Config, EvaluationConfig};
use rivet_orchestrator::coord::{MemoryCoordinator, RedisCoordinator};
use rivet_orchestrator::domain::coord::Coordinator;
use rivet_orchestrator::domain::store::Store;
use rivet_orchestrator::server::{self, RunningServer};
use rivet_orchestrator::storage::SeaStore;
use rivet_orchestrator::testing::{TestDatabase, fresh_database};
use rivet_proto::v1::job_service_client::JobServiceClient;
use rivet_proto::v1::log_service_client::LogServiceClient;
use rivet_proto::v1::pipeline_service_client::PipelineServiceClient;
use rivet_proto::v1::runner_service_client::RunnerServiceClient;
use rivet_proto::v1::{self as pb, ConnectRequest, connect_request, connect_response};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use uuid::Uuid;

/// How long a bench waits for any one thing before it gives up loudly instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(120);

pub use rivet_orchestrator::testing::{Backend, channel, redis_url};

/// The backends named by `RIVET_BENCH_BACKENDS` (`postgres,sqlite` by default).
pub fn selected_backends() -> Vec<Backend> {
    let names = std::env::var("RIVET_BENCH_BACKENDS").unwrap_or_else(|_| "postgres,sqlite".to_owned());
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

/// The production defaults (lease TTL, heartbeat interval, message limits), on loopback;
/// pipelines are evaluated by the `rivet-orchestrator` binary, as this bench cannot be a worker.
pub fn bench_config() -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        replica_id: Some("bench".to_owned()),
        evaluation: EvaluationConfig {
            worker_program: Some(std::path::PathBuf::from(env!("CARGO_BIN_EXE_rivet-orchestrator"))),
            ..EvaluationConfig::default()
        },
        ..Config::default()
    }
}

/// One orchestrator replica served in this process, on its own database.
pub struct Server {
    pub addr: SocketAddr,
    running: Option<RunningServer>,
    _database: TestDatabase,
}

impl Server {
    /// Starts a replica on a fresh database of `backend`.
    pub async fn start(backend: Backend) -> Server {
        let database = fresh_database(backend).await;
        let coord: Arc<dyn Coordinator> = match backend {
            Backend::Postgres => {
                let namespace = format!("rivet-bench-{}", Uuid::new_v4().simple());
                Arc::new(RedisCoordinator::connect(&redis_url(), &namespace).await.expect("redis"))
            }
            Backend::Sqlite => Arc::new(MemoryCoordinator::new()),
        };
        let store: Arc<dyn Store> = Arc::new(SeaStore::connect(&database.url).await.expect("store"));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let running = server::start(bench_config(), store, coord, listener).await.expect("server starts");
        Server { addr: running.addr, running: Some(running), _database: database }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
        }
    }
}

/// The user-facing clients, on one connection.
#[derive(Clone)]
pub struct Api {
    pub pipelines: PipelineServiceClient<Channel>,
    pub jobs: JobServiceClient<Channel>,
    pub logs: LogServiceClient<Channel>,
}

impl Api {
    /// Clients of the orchestrator at `addr`, on a connection of their own.
    pub async fn connect(addr: SocketAddr) -> Api {
        let channel = channel(addr).await;
        Api {
            pipelines: PipelineServiceClient::new(channel.clone()),
            jobs: JobServiceClient::new(channel.clone()),
            logs: LogServiceClient::new(channel),
        }
    }

    /// Creates the one-stage pipeline `name` with no inputs and no runner tags.
    pub async fn create(&mut self, name: &str) {
        let source = format!(
            "return pipeline.define {{ name = \"{name}\", stages = {{ {{ name = \"build\", script = function() end }} }} }}"
        );
        let request = pb::CreatePipelineRequest { source, file_name: "bench.lua".to_owned() };
        self.pipelines.create_pipeline(request).await.expect("create pipeline");
    }

    /// Launches `pipeline` and returns the job's id.
    pub async fn launch(&mut self, pipeline: &str) -> String {
        let request = pb::LaunchJobRequest {
            pipeline: pipeline.to_owned(),
            inputs: Default::default(),
            idempotency_key: String::new(),
        };
        self.jobs.launch_job(request).await.expect("launch job").into_inner().job.expect("job").id
    }

    /// Follows the log of `job` from its first line.
    pub async fn follow(&mut self, job: &str) -> tonic::Streaming<pb::StreamLogsResponse> {
        let request = pb::StreamLogsRequest { job_id: job.to_owned(), from_sequence: 1, follow: true };
        self.logs.stream_logs(request).await.expect("stream logs").into_inner()
    }
}

/// A runner that speaks the protocol message by message: hello, heartbeats at the interval
/// the welcome names (reporting the jobs it accepted), and whatever the bench sends.
pub struct SimRunner {
    sender: mpsc::Sender<ConnectRequest>,
    inbound: tonic::Streaming<pb::ConnectResponse>,
    running: Arc<Mutex<Vec<pb::Assignment>>>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Drop for SimRunner {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

impl SimRunner {
    /// Opens a runner stream on `channel` (shared or not: the caller decides how streams
    /// map to connections) and waits for the welcome.
    pub async fn connect(channel: Channel, capacity: u32) -> SimRunner {
        let id = Uuid::new_v4();
        let (sender, receiver) = mpsc::channel(1024);
        let labels = BTreeMap::from([("os".to_owned(), "linux".to_owned())]);
        let hello = pb::RunnerHello {
            protocol_versions: vec![rivet_core::job::PROTOCOL_VERSION],
            runner_id: id.to_string(),
            name: format!("sim-{}", &id.simple().to_string()[..8]),
            labels: labels.into_iter().collect(),
            capacity,
            running_jobs: Vec::new(),
            version: "bench".to_owned(),
        };
        sender.send(request(connect_request::Body::Hello(hello))).await.expect("send hello");
        let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
        let mut inbound = RunnerServiceClient::new(channel).connect(stream).await.expect("connect").into_inner();
        let welcome = match inbound.message().await.expect("welcome") {
            Some(pb::ConnectResponse { body: Some(connect_response::Body::Welcome(welcome)) }) => welcome,
            other => panic!("expected a welcome, got {other:?}"),
        };
        let running: Arc<Mutex<Vec<pb::Assignment>>> = Arc::default();
        let (beats, beating) = (sender.clone(), running.clone());
        let interval = Duration::from_millis(welcome.heartbeat_interval_ms.max(50));
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let running_jobs = beating
                    .lock()
                    .expect("lock")
                    .iter()
                    .map(|a| pb::RunningJob { assignment: Some(a.clone()), last_sequence: 0 })
                    .collect();
                let beat = pb::RunnerHeartbeat { running_jobs, draining: false };
                if beats.send(request(connect_request::Body::Heartbeat(beat))).await.is_err() {
                    return;
                }
            }
        });
        SimRunner { sender, inbound, running, heartbeat }
    }

    /// The next message from the orchestrator; `None` when the stream ended.
    pub async fn next(&mut self) -> Option<connect_response::Body> {
        match tokio::time::timeout(PATIENCE, self.inbound.message()).await {
            Ok(Ok(Some(message))) => message.body,
            Ok(Ok(None)) | Ok(Err(_)) => None,
            Err(_) => panic!("a simulated runner heard nothing for {PATIENCE:?}"),
        }
    }

    /// The next assignment, skipping other messages.
    pub async fn assignment(&mut self) -> pb::AssignJob {
        loop {
            match self.next().await {
                Some(connect_response::Body::AssignJob(assign)) => return assign,
                Some(_) => {}
                None => panic!("the runner stream ended while waiting for an assignment"),
            }
        }
    }

    /// Waits until the orchestrator confirms that `assign`'s job is finished.
    pub async fn closed(&mut self, assign: &pb::AssignJob) {
        loop {
            match self.next().await {
                Some(connect_response::Body::JobClosed(closed)) if closed.assignment == assign.assignment => return,
                Some(_) => {}
                None => panic!("the runner stream ended while waiting for a job to close"),
            }
        }
    }

    /// Sends a message.
    pub async fn send(&self, body: connect_request::Body) {
        self.sender.send(request(body)).await.expect("runner stream open");
    }

    /// Accepts an assignment; heartbeats report it from now on.
    pub async fn accept(&self, assign: &pb::AssignJob) {
        self.running.lock().expect("lock").extend(assign.assignment.clone());
        self.send(connect_request::Body::JobAccepted(pb::JobAccepted { assignment: assign.assignment.clone() })).await;
    }

    /// Ends the job successfully; its last log line is `last_sequence`.
    pub async fn finish(&self, assign: &pb::AssignJob, last_sequence: u64) {
        self.running.lock().expect("lock").retain(|a| Some(a) != assign.assignment.as_ref());
        let finished = pb::JobFinished {
            assignment: assign.assignment.clone(),
            state: pb::JobState::Succeeded as i32,
            failure_reason: 0,
            message: String::new(),
            last_sequence,
            outputs: Default::default(),
        };
        self.send(connect_request::Body::JobFinished(finished)).await;
    }
}

/// A runner message.
pub fn request(body: connect_request::Body) -> ConnectRequest {
    ConnectRequest { body: Some(body) }
}
