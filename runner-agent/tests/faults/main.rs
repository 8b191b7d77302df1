//! Faults of the infrastructure, with real processes: `rivet-orchestrator` replicas on a
//! private PostgreSQL cluster and a private `redis-server`, `rivet-runner` agents on
//! podman, reaching the replicas through a TCP proxy the test controls (a load balancer
//! that can cut, partition and fail over). Each scenario breaks one thing while a job
//! prints a line every 200 ms, and then checks what must hold whatever broke: the job's
//! final state, its number of attempts (1 wherever its runner stayed alive), every line
//! exactly once in the stored log and at a follower, and no container left.
//!
//! Leases are short (3 s, heartbeats every 500 ms, unless a scenario needs otherwise), so
//! every outage below outlasts a lease but one.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

mod cluster;
#[path = "../../../orchestrator/tests/support/proxy.rs"]
mod proxy;
#[path = "../executor/support.rs"]
mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rivet_proto::v1::log_service_client::LogServiceClient;
use rivet_proto::v1::pipeline_service_client::PipelineServiceClient;
use rivet_proto::v1::{self as pb};
use rivet_runner::config::ExecutorConfig;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::cluster::{Postgres, Redis, Replica, ReplicaConfig, Runner, RunnerConfig, eventually, job};
use crate::proxy::Proxy;

/// How long any one thing may take to happen before a test gives up.
pub const PATIENCE: Duration = Duration::from_secs(90);
/// The lease TTL of the replicas, and their heartbeat interval.
const LEASE_TTL_MS: u64 = 3_000;
const HEARTBEAT_MS: u64 = 500;
/// The health service that reports the coordinator (see `server::COORDINATION_HEALTH`).
const COORDINATION: &str = "rivet.coordination";

/// A line of a job's log as the tests compare them: sequence, attempt, text.
type Line = (u64, u32, String);

/// Everything one scenario runs.
struct Harness {
    /// Kept, with every process's log, when the test fails.
    dir: Option<tempfile::TempDir>,
    env: support::Env,
    postgres: Postgres,
    redis: Redis,
    replicas: Vec<Replica>,
    /// What the runners connect to: the replicas, in order, the first that answers.
    proxy: Proxy,
    runner: Option<Runner>,
    state: PathBuf,
    /// How many lines the job prints.
    lines: u32,
}

impl Harness {
    /// PostgreSQL, Redis, `replicas` orchestrators with leases of `lease_ttl_ms`, a proxy in
    /// front of them, one runner behind the proxy, and a pipeline printing `lines` lines.
    async fn start(replicas: usize, lease_ttl_ms: u64, lines: u32) -> Harness {
        let dir = tempfile::tempdir().expect("a test directory");
        let env = support::Env::new().await;
        let postgres = Postgres::start(dir.path());
        let redis = Redis::start(dir.path());
        let config = ReplicaConfig {
            database_url: postgres.url(),
            redis_url: redis.url(),
            lease_ttl_ms,
            heartbeat_interval_ms: HEARTBEAT_MS,
            env: Vec::new(),
        };
        let mut started = Vec::new();
        // One after the other: the first one migrates the new database.
        for index in 0..replicas {
            started.push(Replica::start(&config, &format!("replica-{index}"), dir.path()).await);
        }
        let proxy = Proxy::balance(started.iter().map(|replica| replica.addr).collect()).await;
        let state = dir.path().join("runner-state");
        let mut harness =
            Harness { dir: Some(dir), env, postgres, redis, replicas: started, proxy, runner: None, state, lines };
        harness.start_runner();
        let mut pipelines = PipelineServiceClient::new(harness.replicas[0].channel().await);
        let request = pb::CreatePipelineRequest { source: ticker(lines), file_name: "ticker.lua".to_owned() };
        pipelines.create_pipeline(request).await.expect("create the pipeline");
        harness
    }

    fn dir(&self) -> &std::path::Path {
        self.dir.as_ref().expect("the test directory").path()
    }

    /// Starts (again) the runner behind the proxy, with the same identity and instance.
    fn start_runner(&mut self) {
        let config = RunnerConfig {
            orchestrator: self.proxy.addr,
            state_dir: &self.state,
            executor: &self.env.config,
            log: self.dir().join("runner.log"),
            env: Vec::new(),
        };
        self.runner = Some(Runner::start(&config));
    }

    /// Launches the ticker through replica 0 and waits until its runner reports it running.
    async fn launch(&self) -> String {
        let mut jobs = self.replicas[0].jobs().await;
        let request = pb::LaunchJobRequest {
            pipeline: "ticker".to_owned(),
            inputs: Default::default(),
            idempotency_key: String::new(),
        };
        let id = jobs.launch_job(request).await.expect("launch").into_inner().job.expect("a job").id;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while job(&mut jobs, &id).await.state() != pb::JobState::Running {
            assert!(tokio::time::Instant::now() < deadline, "job {id} never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        id
    }

    /// Waits for the job to end, then checks everything the scenarios promise: it
    /// succeeded in `attempts` attempts; the stored log holds every line of the last
    /// attempt exactly once, with sequences from 1 without a gap; the follower saw exactly
    /// the stored log; no container of the job is left.
    async fn assert_outcome(&self, replica: usize, id: &str, attempts: u32, follower: Follower) {
        let mut jobs = self.replicas[replica].jobs().await;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let ended = loop {
            let job = job(&mut jobs, id).await;
            if job.end_time.is_some() {
                break job;
            }
            assert!(tokio::time::Instant::now() < deadline, "job {id} never ended: {job:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(ended.state(), pb::JobState::Succeeded, "{ended:?}");
        assert_eq!(ended.attempt, attempts, "the job ran {} times: {ended:?}", ended.attempt);

        let stored = stored_log(self.replicas[replica].addr, id).await;
        let sequences: Vec<u64> = stored.iter().map(|line| line.0).collect();
        assert_eq!(sequences, (1..=stored.len() as u64).collect::<Vec<_>>(), "stored sequences have a gap");
        let last: Vec<&str> = stored.iter().filter(|line| line.1 == attempts).map(|line| line.2.as_str()).collect();
        let expected: Vec<String> = (1..=self.lines).map(|i| format!("line {i}")).collect();
        assert_eq!(last, expected, "every line of attempt {attempts} exactly once, in order");

        let followed = tokio::time::timeout(PATIENCE, follower.task).await.expect("the follower ended").unwrap();
        assert_eq!(followed, stored, "the follower saw exactly the stored log");

        let job_id = uuid::Uuid::parse_str(id).unwrap();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.env.containers_of(job_id).await > 0 {
            assert!(tokio::time::Instant::now() < deadline, "a container of job {id} is left");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `replica` reports the coordinator's health as `status`.
    async fn wait_coordination(&self, replica: usize, status: ServingStatus) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.replicas[replica].health(COORDINATION).await != Some(status) {
            assert!(tokio::time::Instant::now() < deadline, "replica {replica} never reported {status:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Stop the runner first, so that its watcher removes what it left.
        self.runner.take();
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("the processes' logs are kept in {}", dir.keep().display());
        }
    }
}

/// How many lines the ticker prints, one every 200 ms, unless a scenario needs it longer.
const LINES: u32 = 60;

fn ticker(lines: u32) -> String {
    format!(
        r#"return pipeline.define {{
  name = "ticker",
  stages = {{ {{ name = "tick", script = function()
    process.run {{ cmd = "sh", args = {{ "-c", "i=1; while [ $i -le {lines} ]; do echo line $i; i=$((i+1)); sleep 0.2; done" }} }}
  end }} }},
}}"#
    )
}

/// The job's stored log, read without following.
async fn stored_log(addr: SocketAddr, id: &str) -> Vec<Line> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let request = pb::StreamLogsRequest { job_id: id.to_owned(), from_sequence: 1, follow: false };
    let mut stream = LogServiceClient::new(channel).stream_logs(request).await.unwrap().into_inner();
    let mut lines = Vec::new();
    while let Some(batch) = stream.message().await.unwrap() {
        lines.extend(batch.lines.into_iter().map(|line| (line.sequence, line.attempt, line.text)));
    }
    lines
}

/// A client following a job's log on one replica until the job ends, the way a user's
/// `rivet job logs -f` does: when its call fails (the replica lost its database a moment),
/// it follows again from the line after the last it got.
struct Follower {
    seen: Arc<Mutex<Vec<Line>>>,
    task: tokio::task::JoinHandle<Vec<Line>>,
}

impl Follower {
    fn start(addr: SocketAddr, id: &str) -> Follower {
        let seen: Arc<Mutex<Vec<Line>>> = Arc::default();
        let lines = Arc::clone(&seen);
        let id = id.to_owned();
        let task = tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + 3 * PATIENCE;
            loop {
                assert!(tokio::time::Instant::now() < deadline, "the follower of job {id} never saw it end");
                let next = lines.lock().unwrap().last().map_or(1, |line| line.0 + 1);
                if follow_once(addr, &id, next, &lines).await {
                    return lines.lock().unwrap().clone();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Follower { seen, task }
    }

    /// How many lines it has seen so far.
    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// One follow call from `next`; `true` when the job ended (the stream ended with it).
async fn follow_once(addr: SocketAddr, id: &str, next: u64, lines: &Mutex<Vec<Line>>) -> bool {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://{addr}")) else { return false };
    let Ok(channel) = endpoint.connect().await else { return false };
    let request = pb::StreamLogsRequest { job_id: id.to_owned(), from_sequence: next, follow: true };
    let Ok(response) = LogServiceClient::new(channel.clone()).stream_logs(request).await else { return false };
    let mut stream = response.into_inner();
    loop {
        match stream.message().await {
            Ok(Some(batch)) => lines
                .lock()
                .unwrap()
                .extend(batch.lines.into_iter().map(|line| (line.sequence, line.attempt, line.text))),
            Ok(None) => break,
            Err(_) => return false,
        }
    }
    let mut jobs = rivet_proto::v1::job_service_client::JobServiceClient::new(channel);
    let request = pb::GetJobRequest { job_id: id.to_owned() };
    match jobs.get_job(request).await {
        Ok(response) => response.into_inner().job.is_some_and(|job| job.end_time.is_some()),
        Err(_) => false,
    }
}

impl Harness {
    /// Launches the ticker, follows it on replica `on`, and waits until its first lines
    /// have reached the follower: the job is well under way.
    async fn launch_followed(&self, on: usize) -> (String, Follower) {
        let id = self.launch().await;
        let follower = Follower::start(self.replicas[on].addr, &id);
        wait_lines(&follower, 5).await;
        (id, follower)
    }
}

/// Waits until the follower has seen more than `count` lines.
async fn wait_lines(follower: &Follower, count: usize) {
    eventually(&format!("line {} reaching the follower", count + 1), || follower.count() > count).await;
}

/// Redis is SIGKILLed and comes back empty while the job runs: no lease, no presence, no
/// generation. The runner is still connected and reports the job, so its lease is
/// re-established from the heartbeats and the database, and nobody requeues it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_empty_requeues_nothing() {
    let mut harness = Harness::start(2, LEASE_TTL_MS, LINES).await;
    let (id, follower) = harness.launch_followed(1).await;
    harness.redis.kill();
    harness.redis.restart();
    harness.assert_outcome(1, &id, 1, follower).await;
}

/// Redis is down for 30 s (ten lease TTLs) while the job runs. Meanwhile the replicas
/// report the coordinator NOT_SERVING, keep storing the job's lines, and followers on the
/// runner's replica and on another one keep receiving them (from the database); no lease
/// is swept. Redis comes back empty and the job ends in its first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_for_30_seconds_loses_nothing_and_runs_nothing_twice() {
    const OUTAGE: Duration = Duration::from_secs(30);
    let mut harness = Harness::start(2, LEASE_TTL_MS, ticker_lines_for(OUTAGE + Duration::from_secs(6))).await;
    let id = harness.launch().await;
    let same = Follower::start(harness.replicas[0].addr, &id);
    let other = Follower::start(harness.replicas[1].addr, &id);
    wait_lines(&same, 3).await;

    harness.redis.kill();
    let down = tokio::time::Instant::now();
    harness.wait_coordination(0, ServingStatus::NotServing).await;
    harness.wait_coordination(1, ServingStatus::NotServing).await;
    let (same_then, other_then) = (same.count(), other.count());
    wait_lines(&same, same_then + 10).await;
    wait_lines(&other, other_then + 10).await;
    assert!(!harness.redis_is_up(), "the lines above arrived while Redis was down");
    tokio::time::sleep(OUTAGE.saturating_sub(down.elapsed())).await;
    harness.redis.restart();
    harness.wait_coordination(0, ServingStatus::Serving).await;

    harness.assert_outcome(0, &id, 1, same).await;
    let followed = tokio::time::timeout(PATIENCE, other.task).await.expect("the other follower ended").unwrap();
    assert_eq!(followed, stored_log(harness.replicas[1].addr, &id).await, "the other replica's follower");
}

/// How many ticker lines take at least `duration`.
fn ticker_lines_for(duration: Duration) -> u32 {
    (duration.as_millis() / 200) as u32
}

impl Harness {
    fn redis_is_up(&self) -> bool {
        std::net::TcpStream::connect(self.redis.url().trim_start_matches("redis://")).is_ok()
    }
}

/// PostgreSQL restarts (fast shutdown: every connection closed) while the job runs. Reports
/// that could not be stored are not acknowledged; the runner sends them again; the job
/// ends in its first attempt with every line once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_loses_no_line_and_runs_nothing_twice() {
    let harness = Harness::start(2, LEASE_TTL_MS, LINES).await;
    let (id, follower) = harness.launch_followed(1).await;
    harness.postgres.restart();
    harness.assert_outcome(1, &id, 1, follower).await;
}

/// The replica holding the runner's stream is SIGKILLed: the runner reconnects through
/// the load balancer to another one, which keeps the job under its assignment; a follower
/// on a third replica sees no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_hands_its_runner_over_without_a_new_attempt() {
    let mut harness = Harness::start(3, LEASE_TTL_MS, LINES).await;
    let (id, follower) = harness.launch_followed(2).await;
    harness.replicas[0].kill();
    harness.assert_outcome(2, &id, 1, follower).await;
}

/// The runner is SIGKILLed while its job runs. Its watcher removes the job's container
/// at once, though the lease (two minutes here) is far from expired; the runner started
/// again says in its hello that it runs nothing, so the job is requeued at once and runs
/// again, on it, as attempt 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runner_leaves_no_container_and_its_job_is_requeued_when_it_returns() {
    let mut harness = Harness::start(1, 120_000, LINES).await;
    let (id, follower) = harness.launch_followed(0).await;
    harness.runner.as_mut().expect("the runner").kill();
    let job_id = uuid::Uuid::parse_str(&id).unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while harness.env.containers_of(job_id).await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the killed runner's container is still there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut jobs = harness.replicas[0].jobs().await;
    let record = job(&mut jobs, &id).await;
    assert_eq!((record.state(), record.attempt), (pb::JobState::Running, 1), "nothing requeued it yet: {record:?}");

    harness.start_runner();
    harness.assert_outcome(0, &id, 2, follower).await;
}

/// A runner is cut off from every replica for longer than its lease. The job is requeued
/// and a second runner takes it (attempt 2); when the first runner reaches a replica again
/// it is told the job was handed on and stops its copy. Every line of attempt 2 once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_runner_stops_its_copy_of_a_job_that_was_handed_on() {
    const PARTITION: Duration = Duration::from_secs(3 * LEASE_TTL_MS / 1000);
    // Long enough that the first runner's copy still runs when the partition ends.
    let lines = ticker_lines_for(PARTITION + Duration::from_secs(15));
    let harness = Harness::start(1, LEASE_TTL_MS, lines).await;
    let (id, follower) = harness.launch_followed(0).await;

    harness.proxy.partition();
    let cut = tokio::time::Instant::now();
    // A second runner, reaching the replica directly, with its own instance.
    let second = ExecutorConfig {
        instance: format!("{}-second", harness.env.config.instance),
        workspace_root: harness.dir().join("second-workspaces"),
        ..harness.env.config.clone()
    };
    let second_state = harness.dir().join("second-state");
    let _second = Runner::start(&RunnerConfig {
        orchestrator: harness.replicas[0].addr,
        state_dir: &second_state,
        executor: &second,
        log: harness.dir().join("second-runner.log"),
        env: Vec::new(),
    });
    let mut jobs = harness.replicas[0].jobs().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while job(&mut jobs, &id).await.attempt < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the job of the partitioned runner was never handed on");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(PARTITION.saturating_sub(cut.elapsed())).await;
    harness.proxy.heal();
    harness.assert_outcome(0, &id, 2, follower).await;
}

/// A runner cut off from every replica for less than its lease keeps running its job and
/// keeps its lines; when it reaches a replica again it is given the job back under the same
/// assignment and delivers every line once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_partitioned_within_its_lease_delivers_everything_once() {
    const LEASE_TTL_MS: u64 = 10_000;
    const PARTITION: Duration = Duration::from_secs(4);
    let harness = Harness::start(2, LEASE_TTL_MS, LINES).await;
    let (id, follower) = harness.launch_followed(1).await;
    harness.proxy.partition();
    tokio::time::sleep(PARTITION).await;
    harness.proxy.heal();
    harness.assert_outcome(1, &id, 1, follower).await;
}
