//! Test support: orchestrators on real backends (PostgreSQL + Redis, or SQLite + memory)
//! served over real gRPC on loopback, clients, and a fake runner that speaks the runner
//! protocol message by message.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rivet_orchestrator::config::{Config, EvaluationConfig, SecretsConfig};
use rivet_orchestrator::coord::{MemoryCoordinator, RedisCoordinator};
use rivet_orchestrator::domain::coord::Coordinator;
use rivet_orchestrator::domain::registry::Registry;
use rivet_orchestrator::domain::store::Store;
use rivet_orchestrator::server::{self, RunningServer};
use rivet_orchestrator::storage::SeaStore;
pub use rivet_orchestrator::testing::channel;
use rivet_orchestrator::testing::{TestDatabase, fresh_database, redis_url};
use rivet_proto::v1::job_service_client::JobServiceClient;
use rivet_proto::v1::log_service_client::LogServiceClient;
use rivet_proto::v1::pipeline_service_client::PipelineServiceClient;
use rivet_proto::v1::runner_service_client::RunnerServiceClient;
use rivet_proto::v1::{self as pb, ConnectRequest, connect_request, connect_response};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::proxy::Proxy;

/// The secrets key of test clusters (64 hex digits).
pub const TEST_SECRETS_KEY: &str = "7e57e57e57e57e57e57e57e57e57e57e57e57e57e57e57e57e57e57e57e57e57";

/// How long a test waits for anything before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub use rivet_orchestrator::testing::Backend;

/// Settings that keep tests quick: short leases and heartbeats. Pipelines are evaluated
/// by the `rivet-orchestrator` binary: this test program cannot serve as a worker.
pub fn test_config() -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        lease_ttl_ms: 3_000,
        heartbeat_interval_ms: 250,
        shutdown_grace_ms: 1_000,
        max_attempts: 3,
        evaluation: EvaluationConfig {
            worker_program: Some(PathBuf::from(env!("CARGO_BIN_EXE_rivet-orchestrator"))),
            ..EvaluationConfig::default()
        },
        secrets: SecretsConfig { key: Some(TEST_SECRETS_KEY.to_owned()), ..SecretsConfig::default() },
        ..Config::default()
    }
}

/// Settings under which a log follower never re-reads the store on its own while a test
/// runs (only once an hour): a line that reaches it while the job runs came through the
/// live fan-out, so a broken fan-out fails the test instead of being covered by polling.
pub fn without_store_polling(config: &mut Config) {
    config.log_follow_poll_ms = 3_600_000;
}

/// Orchestrator replicas sharing one store and one coordination namespace, each behind a
/// proxy (its address is the replica's address), so that killing a replica closes every
/// connection to it, as a crash of its process would.
pub struct Cluster {
    pub replicas: Vec<Option<RunningServer>>,
    pub addrs: Vec<SocketAddr>,
    fronts: Vec<Proxy>,
    backend: Backend,
    config: Config,
    database: TestDatabase,
    namespace: String,
}

impl Cluster {
    /// One replica on `backend` with the test settings.
    pub async fn start(backend: Backend) -> Cluster {
        Cluster::with(backend, 1, |_| {}).await
    }

    /// `replicas` replicas on `backend`; `tweak` adjusts the settings. SQLite + memory is
    /// a single-process mode, so it always has one replica.
    pub async fn with(backend: Backend, replicas: usize, tweak: impl Fn(&mut Config)) -> Cluster {
        let mut config = test_config();
        tweak(&mut config);
        let database = fresh_database(backend).await;
        let mut cluster = Cluster {
            replicas: Vec::new(),
            addrs: Vec::new(),
            fronts: Vec::new(),
            backend,
            config,
            database,
            namespace: format!("rivet-test-{}", Uuid::new_v4().simple()),
        };
        let count = if backend == Backend::Sqlite { 1 } else { replicas };
        for index in 0..count {
            let server = cluster.serve(index).await;
            let front = Proxy::start(server.addr).await;
            cluster.addrs.push(front.addr);
            cluster.fronts.push(front);
            cluster.replicas.push(Some(server));
        }
        cluster
    }

    /// Starts replica `index` as a fresh process would: its own store connection and, in
    /// the embedded mode, a fresh in-memory coordinator (no lease, nobody online).
    async fn serve(&self, index: usize) -> RunningServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let store: Arc<dyn Store> = Arc::new(SeaStore::connect(&self.database.url).await.expect("store"));
        let coord: Arc<dyn Coordinator> = match self.backend {
            Backend::Sqlite => Arc::new(MemoryCoordinator::new()),
            Backend::Postgres => {
                Arc::new(RedisCoordinator::connect(&redis_url(), &self.namespace).await.expect("redis"))
            }
        };
        let mut config = self.config.clone();
        config.replica_id = Some(format!("replica-{index}"));
        server::start(config, store, coord, listener).await.expect("server")
    }

    /// The URL of the database the replicas share, for tests that read it raw.
    pub fn database_url(&self) -> &str {
        &self.database.url
    }

    /// The address of replica `index`.
    pub fn addr(&self, index: usize) -> SocketAddr {
        self.addrs[index]
    }

    /// The proxy in front of replica `index`, to count the connections it got.
    pub fn front(&self, index: usize) -> &Proxy {
        &self.fronts[index]
    }

    /// The lease TTL the replicas use.
    pub fn lease_ttl(&self) -> Duration {
        self.config.lease_ttl()
    }

    /// Kills replica `index` at once, like a crash: new connections are refused, open ones
    /// are closed, and the replica neither accepts nor handles anything more. Returns once
    /// every runner session it had has stopped: they run on tasks of their own, which
    /// stopping the server's accept loop alone would leave running.
    pub async fn kill(&mut self, index: usize) {
        let Some(server) = self.replicas[index].take() else { return };
        self.fronts[index].retarget(Vec::new());
        self.fronts[index].sever();
        let registry = server.orchestrator.registry().clone();
        server.abort();
        end_sessions(&registry).await;
    }

    /// Starts replica `index` again, as a fresh process, behind the same address.
    pub async fn restart(&mut self, index: usize) {
        let server = self.serve(index).await;
        self.fronts[index].retarget(vec![server.addr]);
        self.replicas[index] = Some(server);
    }

    /// Changes the settings replicas start with from now on (see [`Cluster::restart`]).
    pub fn reconfigure(&mut self, tweak: impl Fn(&mut Config)) {
        tweak(&mut self.config);
    }

    /// Clients of replica `index`.
    pub async fn api(&self, index: usize) -> Api {
        Api::connect(self.addr(index)).await
    }
}

/// Fences every runner session in `registry` and waits until each has stopped handling
/// messages (a session leaves the registry once it has).
async fn end_sessions(registry: &Registry) {
    let ended = async {
        loop {
            let sessions: Vec<_> =
                registry.snapshot().iter().filter_map(|runner| registry.session(runner.id)).collect();
            if sessions.is_empty() {
                return;
            }
            for session in &sessions {
                session.fence.cancel();
            }
            for session in sessions {
                session.ended.cancelled().await;
            }
        }
    };
    tokio::time::timeout(PATIENCE, ended).await.expect("the runner sessions of a killed replica never stopped");
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for server in self.replicas.iter_mut().filter_map(Option::take) {
            server.abort();
        }
    }
}

/// The user-facing clients.
#[derive(Clone)]
pub struct Api {
    pub pipelines: PipelineServiceClient<Channel>,
    pub jobs: JobServiceClient<Channel>,
    pub logs: LogServiceClient<Channel>,
    pub runners: RunnerServiceClient<Channel>,
}

impl Api {
    /// Clients of the orchestrator at `addr`.
    pub async fn connect(addr: SocketAddr) -> Api {
        Api::over(channel(addr).await)
    }

    /// Clients on an open `channel` (TLS, say).
    pub fn over(channel: Channel) -> Api {
        Api {
            pipelines: PipelineServiceClient::new(channel.clone()),
            jobs: JobServiceClient::new(channel.clone()),
            logs: LogServiceClient::new(channel.clone()),
            runners: RunnerServiceClient::new(channel),
        }
    }

    /// Creates a pipeline from `source`.
    pub async fn create(&mut self, source: &str) -> pb::Pipeline {
        let request = pb::CreatePipelineRequest { source: source.to_owned(), file_name: "test.lua".to_owned() };
        self.pipelines.create_pipeline(request).await.expect("create pipeline").into_inner().pipeline.expect("pipeline")
    }

    /// Launches `pipeline` with `inputs`.
    pub async fn launch(&mut self, pipeline: &str, inputs: &[(&str, &str)]) -> Result<pb::Job, tonic::Status> {
        let inputs = inputs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let request = pb::LaunchJobRequest { pipeline: pipeline.to_owned(), inputs, idempotency_key: String::new() };
        Ok(self.jobs.launch_job(request).await?.into_inner().job.expect("job"))
    }

    /// The job `id`.
    pub async fn job(&mut self, id: &str) -> pb::Job {
        self.jobs
            .get_job(pb::GetJobRequest { job_id: id.to_owned() })
            .await
            .expect("get job")
            .into_inner()
            .job
            .expect("job")
    }

    /// Waits until the job `id` is in `state`.
    pub async fn wait_for(&mut self, id: &str, state: pb::JobState) -> pb::Job {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let job = self.job(id).await;
            if job.state == state as i32 {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {id} never reached {state:?}; it is {:?}",
                job.state()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Follows the log of `job` from `from` until the server ends the stream.
    pub async fn follow(&mut self, job: &str, from: u64) -> Vec<pb::LogLine> {
        self.follower(job, from).await.end().await
    }

    /// Starts following the log of `job` from `from`. The server subscribes to the job's
    /// live lines before it replays the stored ones, so once a replayed line has arrived
    /// ([`Follower::until`]) every later line reaches the follower live.
    pub async fn follower(&mut self, job: &str, from: u64) -> Follower {
        let request = pb::StreamLogsRequest { job_id: job.to_owned(), from_sequence: from, follow: true };
        let call = tokio::time::timeout(PATIENCE, self.logs.stream_logs(request)).await;
        Follower {
            stream: call.expect("the log stream never opened").expect("stream logs").into_inner(),
            lines: Vec::new(),
        }
    }
}

/// A log follower and the lines it has received so far.
pub struct Follower {
    stream: tonic::Streaming<pb::StreamLogsResponse>,
    /// What arrived so far, in order of arrival.
    pub lines: Vec<pb::LogLine>,
}

impl Follower {
    /// The next response's lines; `None` once the server ended the stream. Panics when
    /// nothing comes within [`PATIENCE`].
    async fn next(&mut self) -> Option<Vec<pb::LogLine>> {
        let message = tokio::time::timeout(PATIENCE, self.stream.message()).await.expect("log stream stalled");
        message.expect("log stream").map(|batch| batch.lines)
    }

    /// Reads until line `sequence` (or a later one) has arrived; panics when it does not
    /// within [`PATIENCE`].
    pub async fn until(&mut self, sequence: u64) {
        while self.lines.last().is_none_or(|line| line.sequence < sequence) {
            let last = self.lines.last().map_or(0, |line| line.sequence);
            let message = tokio::time::timeout(PATIENCE, self.stream.message()).await.unwrap_or_else(|_| {
                panic!("line {sequence} never reached the follower; the last that did is line {last}")
            });
            let batch = message.expect("log stream").unwrap_or_else(|| panic!("the log ended before line {sequence}"));
            self.lines.extend(batch.lines);
        }
    }

    /// Reads until the server ends the stream; returns every line received.
    pub async fn end(mut self) -> Vec<pb::LogLine> {
        while let Some(batch) = self.next().await {
            self.lines.extend(batch);
        }
        self.lines
    }
}

/// The one-stage pipeline most tests use, with `tags` as runner tags.
pub fn pipeline_source(name: &str, tags: &[(&str, &str)]) -> String {
    let tags: Vec<String> = tags.iter().map(|(k, v)| format!("{{ key = \"{k}\", value = \"{v}\" }}")).collect();
    format!(
        r#"return pipeline.define {{
  name = "{name}",
  inputs = {{
    count = {{ type = "number", default = 3 }},
    target = {{ type = "string", options = {{ "debug", "release" }}, default = "debug" }},
    image = {{ type = "string", required = true }},
  }},
  runner = {{ {} }},
  stages = {{ {{ name = "build", script = function() end }} }},
}}"#,
        tags.join(", ")
    )
}

/// Registers a runner with the registration token `token`, asking for `labels`.
pub async fn register(
    addr: SocketAddr,
    token: &str,
    labels: &[(&str, &str)],
) -> Result<pb::RegisterRunnerResponse, tonic::Status> {
    let mut client = RunnerServiceClient::new(channel(addr).await);
    let mut request = tonic::Request::new(pb::RegisterRunnerRequest {
        name: "registered".to_owned(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        version: "test".to_owned(),
    });
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("metadata"));
    Ok(client.register_runner(request).await?.into_inner())
}

/// A runner that speaks the protocol message by message, so tests control every step.
pub struct FakeRunner {
    pub id: Uuid,
    pub welcome: pb::RunnerWelcome,
    sender: mpsc::Sender<ConnectRequest>,
    inbound: tonic::Streaming<pb::ConnectResponse>,
    running: Arc<Mutex<Vec<pb::Assignment>>>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Drop for FakeRunner {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

impl FakeRunner {
    /// Connects a new runner with `capacity` and `labels`.
    pub async fn connect(addr: SocketAddr, capacity: u32, labels: &[(&str, &str)]) -> FakeRunner {
        FakeRunner::connect_as(addr, Uuid::new_v4(), capacity, labels, Vec::new(), None).await.expect("runner connects")
    }

    /// Connects as runner `id`, reporting `running` jobs, with an optional token.
    pub async fn connect_as(
        addr: SocketAddr,
        id: Uuid,
        capacity: u32,
        labels: &[(&str, &str)],
        running: Vec<pb::RunningJob>,
        token: Option<&str>,
    ) -> Result<FakeRunner, tonic::Status> {
        let mut client = RunnerServiceClient::new(channel(addr).await);
        let (sender, receiver) = mpsc::channel(1024);
        let hello = pb::RunnerHello {
            protocol_versions: vec![rivet_core::job::PROTOCOL_VERSION],
            runner_id: id.to_string(),
            name: format!("fake-{}", &id.to_string()[..8]),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect(),
            capacity,
            running_jobs: running,
            version: "test".to_owned(),
        };
        sender.send(request(connect_request::Body::Hello(hello))).await.expect("send hello");
        let mut call = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(receiver));
        if let Some(token) = token {
            call.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("metadata"));
        }
        let mut inbound = client.connect(call).await?.into_inner();
        let welcome = match inbound.message().await? {
            Some(pb::ConnectResponse { body: Some(connect_response::Body::Welcome(welcome)) }) => welcome,
            other => panic!("expected a welcome, got {other:?}"),
        };
        // Heartbeats renew the leases of the jobs this runner accepted, like a real runner.
        let running: Arc<Mutex<Vec<pb::Assignment>>> = Arc::default();
        let beats = sender.clone();
        let beating = running.clone();
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
        Ok(FakeRunner { id, welcome, sender, inbound, running, heartbeat })
    }

    /// The next message from the orchestrator, or `None` when none comes within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<connect_response::Body> {
        match tokio::time::timeout(wait, self.inbound.message()).await {
            Ok(Ok(Some(message))) => message.body,
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => None,
        }
    }

    /// Waits until the orchestrator ends the stream, skipping other messages; panics when
    /// it stays open longer than [`PATIENCE`].
    pub async fn closed(&mut self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.inbound.message()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) | Ok(Err(_)) => return,
                Err(_) => panic!("the stream of runner {} stayed open", self.id),
            }
        }
    }

    /// The next message that `pick` accepts, skipping others (acks, mostly).
    pub async fn expect<T>(&mut self, what: &str, pick: impl Fn(connect_response::Body) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let body =
                self.next_within(left).await.unwrap_or_else(|| panic!("runner {} never received {what}", self.id));
            if let Some(found) = pick(body) {
                return found;
            }
        }
    }

    /// The next assignment.
    pub async fn assignment(&mut self) -> pb::AssignJob {
        self.expect("an assignment", |body| match body {
            connect_response::Body::AssignJob(assign) => Some(assign),
            _ => None,
        })
        .await
    }

    /// Sends a message.
    pub async fn send(&self, body: connect_request::Body) {
        self.sender.send(request(body)).await.expect("runner stream open");
    }

    /// Accepts an assignment; heartbeats renew its lease from now on.
    pub async fn accept(&self, assign: &pb::AssignJob) {
        self.running.lock().expect("lock").extend(assign.assignment.clone());
        self.send(connect_request::Body::JobAccepted(pb::JobAccepted { assignment: assign.assignment.clone() })).await;
    }

    /// Sends log lines `sequences` under the assignment.
    pub async fn log(&self, assign: &pb::AssignJob, sequences: std::ops::RangeInclusive<u64>) {
        let lines = sequences
            .map(|sequence| pb::LogLine {
                sequence,
                time: None,
                level: pb::LogLevel::Info as i32,
                stage: "build".to_owned(),
                text: format!("line {sequence}"),
                attempt: 0,
            })
            .collect();
        self.send(connect_request::Body::LogBatch(pb::LogBatch { assignment: assign.assignment.clone(), lines })).await;
    }

    /// Ends the job with `state`, its last line being `last_sequence`.
    pub async fn finish(&self, assign: &pb::AssignJob, state: pb::JobState, last_sequence: u64) {
        self.running.lock().expect("lock").retain(|a| Some(a) != assign.assignment.as_ref());
        let finished = pb::JobFinished {
            assignment: assign.assignment.clone(),
            state: state as i32,
            failure_reason: 0,
            message: String::new(),
            last_sequence,
            outputs: Default::default(),
        };
        self.send(connect_request::Body::JobFinished(finished)).await;
    }

    /// Waits for the ack of `sequence` for the assignment's job.
    pub async fn acked(&mut self, assign: &pb::AssignJob, sequence: u64) {
        let job = assign.assignment.as_ref().expect("assignment").job_id.clone();
        self.expect(&format!("an ack of {sequence}"), |body| match body {
            connect_response::Body::LogAck(ack) if ack.job_id == job && ack.sequence >= sequence => Some(()),
            _ => None,
        })
        .await
    }

    /// Waits for the orchestrator to refuse something about the assignment.
    pub async fn refused(&mut self, assign: &pb::AssignJob) -> String {
        let wanted = assign.assignment.clone();
        self.expect("a refusal", |body| match body {
            connect_response::Body::Refused(refused) if refused.assignment == wanted => Some(refused.reason),
            _ => None,
        })
        .await
    }
}

fn request(body: connect_request::Body) -> ConnectRequest {
    ConnectRequest { body: Some(body) }
}

/// Runs `body` once per backend, as separate tests.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body($crate::support::Backend::Postgres).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body($crate::support::Backend::Sqlite).await
            }
        }
    };
}
