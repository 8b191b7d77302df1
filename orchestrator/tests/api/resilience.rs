//! The real runner agent (with a scripted job runner instead of podman) against broken
//! connections and a restarted orchestrator: no log line is lost or duplicated.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rivet_core::{Assignment, JobState, LogLevel, LogLine, StageState};
use rivet_proto::v1 as pb;
use rivet_runner::agent::{Agent, AgentConfig, JobRunner, Stop};
use rivet_runner::job::{EventSink, JobEvent, JobOutcome, JobSpec};
use tokio_util::sync::CancellationToken;

use crate::both_backends;
use crate::proxy::Proxy;
use crate::support::{Backend, Cluster, PATIENCE, pipeline_source};

/// Emits `lines` log lines in batches of 50, `pause` apart, then succeeds.
pub(crate) struct ScriptedRunner {
    pub(crate) lines: u64,
    pub(crate) pause: Duration,
}

impl JobRunner for ScriptedRunner {
    fn run(
        &self,
        spec: JobSpec,
        sink: Arc<dyn EventSink>,
        cancel: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = JobOutcome> + Send + 'static>> {
        let (lines, pause) = (self.lines, self.pause);
        Box::pin(async move {
            let a: Assignment = spec.assignment;
            sink.emit(a, JobEvent::StageStarted { stage: "build".into(), at: Utc::now() });
            let mut sequence = spec.first_sequence;
            for index in 0..lines {
                let text = format!("line {}", index + 1);
                let line = LogLine {
                    sequence,
                    time: Utc::now(),
                    level: LogLevel::Info,
                    stage: "build".into(),
                    text,
                    attempt: a.attempt,
                };
                sink.emit(a, JobEvent::Log(line));
                sequence += 1;
                if index % 50 == 49 {
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = cancel.cancelled() => break,
                    }
                }
            }
            let state = if cancel.is_cancelled() { StageState::Cancelled } else { StageState::Succeeded };
            sink.emit(
                a,
                JobEvent::StageFinished {
                    stage: "build".into(),
                    state,
                    failure_reason: None,
                    message: String::new(),
                    at: Utc::now(),
                },
            );
            JobOutcome {
                state: if cancel.is_cancelled() { JobState::Cancelled } else { JobState::Succeeded },
                failure_reason: None,
                message: String::new(),
                last_sequence: sequence - 1,
                outputs: Default::default(),
            }
        })
    }
}

fn start_agent(
    orchestrator: SocketAddr,
    lines: u64,
    pause: Duration,
) -> (Stop, tokio::task::JoinHandle<()>, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let config = AgentConfig {
        orchestrator_url: format!("http://{orchestrator}"),
        capacity: 1,
        state_dir: state.path().to_owned(),
        reconnect_min_ms: 50,
        reconnect_max_ms: 400,
        // Small, so a long log spills to disk and is read back.
        log_memory_bytes: 16 * 1024,
        ..AgentConfig::default()
    };
    let agent = Agent::new(config, Arc::new(ScriptedRunner { lines, pause })).unwrap();
    let stop = Stop::default();
    let running = stop.clone();
    let task = tokio::spawn(async move {
        agent.run(running).await.unwrap();
    });
    (stop, task, state)
}

fn assert_complete(lines: &[pb::LogLine], count: u64) {
    let sequences: Vec<u64> = lines.iter().map(|l| l.sequence).collect();
    assert_eq!(sequences, (1..=count).collect::<Vec<_>>(), "every line once, in order");
    assert!(lines.iter().enumerate().all(|(i, l)| l.text == format!("line {}", i + 1)));
}

async fn broken_connections(backend: Backend) {
    let cluster = Cluster::start(backend).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("flaky", &[])).await;
    // Only the runner goes through this proxy: cutting it leaves the follower alone.
    let proxy = Proxy::start(cluster.addr(0)).await;
    let (stop, agent, _state) = start_agent(proxy.addr, 3_000, Duration::from_millis(60));
    let job = api.launch("flaky", &[("image", "x")]).await.unwrap();
    api.wait_for(&job.id, pb::JobState::Running).await;
    let mut follower = api.follower(&job.id, 1).await;
    // Three times: once more lines have arrived, cut the runner's connection, then wait
    // until the runner has connected again through the proxy.
    let mut connections = proxy.accepted();
    for cut in 1..=3u64 {
        follower.until(cut * 300).await;
        let open = proxy.sever();
        assert!(open >= 1, "cut {cut} found no open connection to cut");
        connections = proxy.accepted_more_than(connections, PATIENCE).await;
    }
    assert!(connections >= 4, "the runner connected {connections} times, not once plus once per cut");
    let done = api.wait_for(&job.id, pb::JobState::Succeeded).await;
    assert_eq!(done.attempt, 1, "a broken stream must not cost the job its attempt");
    assert_complete(&follower.end().await, 3_000);
    stop.drain.cancel();
    agent.await.unwrap();
}
both_backends!(a_runner_that_reconnects_loses_and_repeats_no_line, broken_connections);

async fn restarted_orchestrator(backend: Backend) {
    let mut cluster = Cluster::start(backend).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("survivor", &[])).await;
    let (stop, agent, _state) = start_agent(cluster.addr(0), 2_000, Duration::from_millis(50));
    let job = api.launch("survivor", &[("image", "x")]).await.unwrap();
    api.wait_for(&job.id, pb::JobState::Running).await;
    // Mid-job: once line 200 is stored.
    api.follower(&job.id, 200).await.until(200).await;
    // The kill closes every connection and ends the runner's session; a fresh process
    // (SQLite: with a fresh in-memory coordinator, no lease) takes over once the runner
    // has tried to come back while the orchestrator was down.
    let before = cluster.front(0).accepted();
    cluster.kill(0).await;
    cluster.front(0).accepted_more_than(before, PATIENCE).await;
    cluster.restart(0).await;
    let mut api = cluster.api(0).await;
    let done = api.wait_for(&job.id, pb::JobState::Succeeded).await;
    assert_eq!(done.attempt, 1);
    assert_complete(&api.follow(&job.id, 0).await, 2_000);
    stop.drain.cancel();
    agent.await.unwrap();
}
both_backends!(an_orchestrator_restarted_mid_job_loses_nothing, restarted_orchestrator);

async fn draining(backend: Backend) {
    let cluster = Cluster::start(backend).await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("drain", &[])).await;
    let (stop, agent, _state) = start_agent(cluster.addr(0), 200, Duration::from_millis(100));
    let first = api.launch("drain", &[("image", "x")]).await.unwrap();
    api.wait_for(&first.id, pb::JobState::Running).await;
    // Draining: the running job finishes, no new one is taken, then the agent stops.
    stop.drain.cancel();
    let second = api.launch("drain", &[("image", "x")]).await.unwrap();
    agent.await.unwrap();
    assert_eq!(api.job(&first.id).await.state(), pb::JobState::Succeeded);
    // Had the job reached the runner before it said it drains, it was rejected and requeued.
    let second = api.wait_for(&second.id, pb::JobState::Queued).await;
    assert_eq!(second.attempt, 1);
}
both_backends!(a_draining_runner_finishes_its_job_and_takes_no_new_one, draining);

/// A runner told to drain while no orchestrator answers, with nothing running and nothing
/// to report, stops instead of reconnecting forever; a drain during a reconnect delay is
/// acted on at once. The agent points at a port nobody listens on, so it is in its
/// reconnect loop from the start.
#[tokio::test]
async fn a_draining_runner_without_an_orchestrator_stops() {
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap();
    let (stop, agent, _state) = start_agent(nobody, 10, Duration::from_millis(1));
    stop.drain.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), agent).await;
    assert!(stopped.is_ok(), "the draining runner kept reconnecting to a vanished orchestrator");
}
