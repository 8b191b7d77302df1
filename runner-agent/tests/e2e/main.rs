//! End to end: an orchestrator (SQLite + memory, in-process), the runner agent (in-process,
//! or the real `rivet-runner` binary where a test kills it), real podman, real gRPC.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

mod config;
mod plugins;
mod secrets;
#[path = "../executor/support.rs"]
mod support;
mod webhook;

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rivet_orchestrator::config::{Config, EvaluationConfig, SecretsConfig};
use rivet_orchestrator::coord::MemoryCoordinator;
use rivet_orchestrator::server::{self, RunningServer};
use rivet_orchestrator::storage::SeaStore;
use rivet_proto::v1::job_service_client::JobServiceClient;
use rivet_proto::v1::log_service_client::LogServiceClient;
use rivet_proto::v1::pipeline_service_client::PipelineServiceClient;
use rivet_proto::v1::{self as pb};
use rivet_runner::agent::{Agent, AgentConfig, Stop};
use rivet_runner::executor::PodmanRunner;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// How long a test waits for any one event before it fails.
const PATIENCE: Duration = Duration::from_secs(60);

struct Stack {
    env: support::Env,
    server: Option<RunningServer>,
    addr: SocketAddr,
    pipelines: PipelineServiceClient<Channel>,
    jobs: JobServiceClient<Channel>,
    logs: LogServiceClient<Channel>,
    state: tempfile::TempDir,
    _db: tempfile::TempDir,
}

impl Stack {
    async fn start() -> Stack {
        let env = support::Env::new().await;
        let db = tempfile::tempdir().unwrap();
        let config = Config {
            database_url: format!("sqlite://{}?mode=rwc", db.path().join("rivet.db").display()),
            lease_ttl_ms: 3_000,
            heartbeat_interval_ms: 250,
            shutdown_grace_ms: 1_000,
            // This test program cannot serve as an evaluation worker; the runner binary can.
            evaluation: EvaluationConfig {
                worker_program: Some(env!("CARGO_BIN_EXE_rivet-runner").into()),
                ..EvaluationConfig::default()
            },
            secrets: SecretsConfig {
                key: Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_owned()),
                ..SecretsConfig::default()
            },
            // Forges' webhooks, on a port of its own.
            webhooks: rivet_orchestrator::config::WebhooksConfig {
                listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
                ..Default::default()
            },
            ..Config::default()
        };
        let store = Arc::new(SeaStore::connect(&config.database_url).await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = server::start(config, store, Arc::new(MemoryCoordinator::new()), listener).await.unwrap();
        let addr = server.addr;
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        Stack {
            env,
            server: Some(server),
            addr,
            pipelines: PipelineServiceClient::new(channel.clone()),
            jobs: JobServiceClient::new(channel.clone()),
            logs: LogServiceClient::new(channel),
            state: tempfile::tempdir().unwrap(),
            _db: db,
        }
    }

    fn agent_config(&self) -> AgentConfig {
        AgentConfig {
            orchestrator_url: format!("http://{}", self.addr),
            capacity: 2,
            labels: [("capability".to_owned(), "docker".to_owned())].into_iter().collect(),
            state_dir: self.state.path().to_owned(),
            reconnect_min_ms: 50,
            reconnect_max_ms: 500,
            executor: self.env.config.clone(),
            ..AgentConfig::default()
        }
    }

    /// Starts an in-process agent; stop it with the returned `Stop`.
    async fn agent(&self) -> (Stop, tokio::task::JoinHandle<()>) {
        let runner = PodmanRunner::connect(self.env.config.clone()).await.unwrap();
        let agent = Agent::new(self.agent_config(), Arc::new(runner)).unwrap();
        let stop = Stop::default();
        let running = stop.clone();
        (stop, tokio::spawn(async move { agent.run(running).await.unwrap() }))
    }

    /// Starts the `rivet-runner` binary, configured through its environment.
    fn runner_process(&self) -> RunnerProcess {
        let config = &self.env.config;
        let mut child = Command::new(env!("CARGO_BIN_EXE_rivet-runner"))
            .env("RIVET_RUNNER_ORCHESTRATOR_URL", format!("http://{}", self.addr))
            .env("RIVET_RUNNER_STATE_DIR", self.state.path())
            .env("RIVET_RUNNER_RECONNECT_MIN_MS", "50")
            .env("RIVET_RUNNER_EXECUTOR__PODMAN_SOCKET", &config.podman_socket)
            .env("RIVET_RUNNER_EXECUTOR__WORKSPACE_ROOT", &config.workspace_root)
            .env("RIVET_RUNNER_EXECUTOR__INSTANCE", format!("\"{}\"", config.instance))
            .env("RIVET_RUNNER_EXECUTOR__CANCEL_GRACE_SECS", "1")
            // Its own messages (such as "draining") are events the tests wait for.
            .env("RUST_LOG", "warn,rivet_runner=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start rivet-runner");
        // Read all along, so that the runner never blocks on a full pipe.
        let stdout = child.stdout.take().expect("the runner's piped stdout");
        let (sender, log) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("rivet-runner: {line}");
                let _ = sender.send(line);
            }
        });
        RunnerProcess { child, log }
    }

    async fn create(&mut self, source: &str, file: &str) {
        let request = pb::CreatePipelineRequest { source: source.to_owned(), file_name: file.to_owned() };
        self.pipelines.create_pipeline(request).await.unwrap();
    }

    async fn launch(&mut self, pipeline: &str, inputs: &[(&str, &str)]) -> String {
        let inputs = inputs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let request = pb::LaunchJobRequest { pipeline: pipeline.to_owned(), inputs, idempotency_key: String::new() };
        self.jobs.launch_job(request).await.unwrap().into_inner().job.unwrap().id
    }

    /// Watches the job (`WatchJob`) until `done` holds for one of its states, and returns
    /// that state.
    async fn wait(&mut self, id: &str, what: &str, done: impl Fn(&pb::Job) -> bool) -> pb::Job {
        let request = pb::WatchJobRequest { job_id: id.to_owned() };
        let mut changes = self.jobs.watch_job(request).await.unwrap().into_inner();
        let mut last = None;
        let watching = async {
            while let Some(change) = changes.message().await.unwrap() {
                let job = change.job.unwrap();
                if done(&job) {
                    return Some(job);
                }
                last = Some(job);
            }
            None
        };
        let outcome = tokio::time::timeout(PATIENCE, watching).await;
        match outcome {
            Ok(Some(job)) => job,
            Ok(None) => panic!("job {id} ended, never {what}: {last:?}"),
            Err(_) => panic!("job {id} never {what} within {PATIENCE:?}: {last:?}"),
        }
    }

    async fn wait_ended(&mut self, id: &str) -> pb::Job {
        self.wait(id, "ended", |job| job.end_time.is_some()).await
    }

    /// Follows the log until the job ends; each line with when it arrived.
    async fn follow(&mut self, id: &str) -> Vec<(pb::LogLine, std::time::SystemTime)> {
        follow_with(self.logs.clone(), id.to_owned()).await
    }

    /// Follows the log until a line reads `text`: the job got that far, and its log streams.
    async fn logged(&mut self, id: &str, text: &str) {
        let request = pb::StreamLogsRequest { job_id: id.to_owned(), from_sequence: 1, follow: true };
        let mut stream = self.logs.stream_logs(request).await.unwrap().into_inner();
        let seen = async {
            while let Some(batch) = stream.message().await.unwrap() {
                if batch.lines.iter().any(|line| line.text == text) {
                    return true;
                }
            }
            false
        };
        seen_within(&format!("job {id} logging `{text}`"), seen).await;
    }

    /// Waits until the job has no container left.
    async fn no_container_left(&self, job: uuid::Uuid) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.env.containers_of(job).await > 0 {
            assert!(tokio::time::Instant::now() < deadline, "a container of job {job} is still there");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Waits for `seen`, which reads a stream until it finds `what` (`true`) or the stream ends
/// (`false`); fails the test on the end, or when it takes longer than [`PATIENCE`].
async fn seen_within(what: &str, seen: impl Future<Output = bool>) {
    match tokio::time::timeout(PATIENCE, seen).await {
        Ok(true) => {}
        Ok(false) => panic!("never saw {what}: the stream ended first"),
        Err(_) => panic!("never saw {what} within {PATIENCE:?}"),
    }
}

/// The `rivet-runner` binary, started by a test: what it logs is echoed to the test's output
/// and can be waited for. It is killed if the test ends first.
struct RunnerProcess {
    child: Child,
    log: mpsc::UnboundedReceiver<String>,
}

impl RunnerProcess {
    /// Sends it `signal` (a name such as `TERM`).
    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("rivet-runner is still running");
        let status = std::process::Command::new("kill").args([format!("-{signal}"), pid.to_string()]).status().unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Waits until it logs a line that contains `text`.
    async fn logged(&mut self, text: &str) {
        let seen = async {
            while let Some(line) = self.log.recv().await {
                if line.contains(text) {
                    return true;
                }
            }
            false
        };
        seen_within(&format!("rivet-runner logging `{text}`"), seen).await;
    }

    /// Waits for it to exit; kills it and fails the test when that takes longer than
    /// [`PATIENCE`].
    async fn exit(&mut self) -> ExitStatus {
        match tokio::time::timeout(PATIENCE, self.child.wait()).await {
            Ok(status) => status.expect("wait for rivet-runner"),
            Err(_) => {
                let _ = self.child.start_kill();
                panic!("rivet-runner did not exit within {PATIENCE:?}, so the test killed it");
            }
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

fn texts(lines: &[(pb::LogLine, std::time::SystemTime)]) -> Vec<String> {
    lines.iter().map(|(line, _)| line.text.clone()).collect()
}

/// The seed pipelines' images (`rust:latest`, `docker:latest`) cannot be pulled here (no
/// registry), and the host's own images of those names are not the test's to change. So
/// each gets a name of this test's own, a tag of the local test image, which the pipelines
/// are pointed at and which is removed again when this is dropped.
struct SeedImages {
    /// Each seed image with the private name that stands in for it.
    names: Vec<(&'static str, String)>,
}

impl SeedImages {
    fn tag() -> SeedImages {
        let test = uuid::Uuid::new_v4().simple();
        let mut images = SeedImages { names: Vec::new() };
        for (seed, short) in [("rust:latest", "rust"), ("docker:latest", "docker")] {
            let private = format!("localhost/rivet-e2e-{test}-{short}:latest");
            let status = std::process::Command::new("podman").args(["tag", support::TEST_IMAGE, &private]).status();
            assert!(status.is_ok_and(|status| status.success()), "podman tag {} {private}", support::TEST_IMAGE);
            images.names.push((seed, private));
        }
        images
    }

    /// `source` with each seed image replaced by its private name.
    fn adapt(&self, source: &str) -> String {
        self.names.iter().fold(source.to_owned(), |source, (seed, private)| {
            source.replace(&format!("\"{seed}\""), &format!("\"{private}\""))
        })
    }
}

impl Drop for SeedImages {
    fn drop(&mut self) {
        for (_, private) in &self.names {
            let status = std::process::Command::new("podman").args(["untag", support::TEST_IMAGE, private]).status();
            if !status.as_ref().is_ok_and(|status| status.success()) {
                eprintln!("could not remove the test's image name {private}: {status:?}");
            }
        }
    }
}

/// Whether podman knows an image of that name.
fn image_exists(name: &str) -> bool {
    let status = std::process::Command::new("podman").args(["image", "exists", name]).status();
    status.is_ok_and(|status| status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_pipelines_run_end_to_end() {
    let mut stack = Stack::start().await;
    let images = SeedImages::tag();
    let (stop, agent) = stack.agent().await;
    for file in ["build-and-test.lua", "docker-build.lua"] {
        let source = images.adapt(&support::example(file));
        for (seed, _) in &images.names {
            assert!(!source.contains(&format!("\"{seed}\"")), "{file} still names {seed}");
        }
        stack.create(&source, file).await;
    }

    let build = stack.launch("Build and Test", &[("branch", "release"), ("parallel_jobs", "8")]).await;
    let lines = stack.follow(&build).await;
    let job = stack.wait_ended(&build).await;
    assert_eq!(job.state(), pb::JobState::Succeeded, "{job:?}");
    let texts = texts(&lines);
    assert!(texts.iter().any(|t| t == "Building project..."), "{texts:?}");
    assert!(texts.iter().any(|t| t == "Using 8 parallel jobs"), "{texts:?}");
    assert!(texts.iter().any(|t| t == "Running tests..."), "{texts:?}");
    let states: Vec<pb::StageState> = job.stages.iter().map(|s| s.state()).collect();
    assert_eq!(states, [pb::StageState::Succeeded, pb::StageState::Succeeded]);

    let skipped = stack.launch("Build and Test", &[("skip_tests", "yes")]).await;
    let job = stack.wait_ended(&skipped).await;
    assert_eq!(job.state(), pb::JobState::Succeeded);
    assert_eq!(job.stages[1].state(), pb::StageState::Skipped);

    let docker = stack.launch("Docker Build Pipeline", &[("image_name", "app")]).await;
    let job = stack.wait_ended(&docker).await;
    assert_eq!(job.state(), pb::JobState::Succeeded, "{job:?}");
    stop.drain.cancel();
    agent.await.unwrap();

    let names: Vec<String> = images.names.iter().map(|(_, private)| private.clone()).collect();
    drop(images);
    for name in names {
        assert!(!image_exists(&name), "the test's image name {name} was left behind");
    }
    assert!(image_exists(support::TEST_IMAGE), "removing the test's names removed the test image");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_run_end_to_end() {
    let mut stack = Stack::start().await;
    let (stop, agent) = stack.agent().await;
    for (file, name) in
        [("hello.lua", "hello"), ("release-outputs.lua", ""), ("multi-target.lua", ""), ("inputs-and-logs.lua", "")]
    {
        let source = support::example(file);
        let definition = rivet_core::check(&source, file).unwrap();
        stack.create(&source, file).await;
        let required: Vec<(String, String)> = definition
            .inputs
            .iter()
            .filter(|input| input.required)
            .map(|input| (input.name.clone(), "value".to_owned()))
            .collect();
        let inputs: Vec<(&str, &str)> = required.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let id = stack.launch(&definition.name, &inputs).await;
        let lines = stack.follow(&id).await;
        let job = stack.wait_ended(&id).await;
        assert_eq!(job.state(), pb::JobState::Succeeded, "{file}: {job:?}\n{:?}", texts(&lines));
        if !name.is_empty() {
            assert!(texts(&lines).iter().any(|t| t.contains("hello from rivet")), "{:?}", texts(&lines));
        }
    }
    stop.drain.cancel();
    agent.await.unwrap();
}

/// The process prints 200,000 lines, then waits until the test has received the first of
/// them (the test writes a file into the job's workspace when it has), then prints again.
/// So it can only finish if its first line reached the follower while it ran; were lines
/// delivered only at its end, it would give up waiting and fail the job. All its lines
/// arrive once each, in order, without gaps in their sequence numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_output_streams_to_a_follower_while_the_process_runs() {
    let mut stack = Stack::start().await;
    let (stop, agent) = stack.agent().await;
    // The wait is bounded (600 × 0.1 s) so that a log that does not stream fails the job
    // rather than hanging the test.
    let source = r#"return pipeline.define {
  name = "chatty",
  stages = { { name = "count", script = function()
    process.run { cmd = "sh", args = { "-c", [[
seq 1 200000
i=0
until [ -e /workspace/first-line-arrived ]; do
  i=$((i + 1))
  if [ "$i" -gt 600 ]; then echo "the first line never reached the follower"; exit 1; fi
  sleep 0.1
done
echo "the first line reached the follower while the process ran"
]] } }
  end } },
}"#;
    stack.create(source, "chatty.lua").await;
    let id = stack.launch("chatty", &[]).await;
    let release = stack.env.workspace_root().join(format!("{}-1", uuid::Uuid::parse_str(&id).unwrap()));
    let release = release.join("first-line-arrived");

    let request = pb::StreamLogsRequest { job_id: id.clone(), from_sequence: 1, follow: true };
    let mut stream = stack.logs.stream_logs(request).await.unwrap().into_inner();
    let mut lines: Vec<pb::LogLine> = Vec::new();
    loop {
        let Ok(batch) = tokio::time::timeout(PATIENCE, stream.message()).await else {
            let job = stack.jobs.get_job(pb::GetJobRequest { job_id: id.clone() }).await.unwrap().into_inner().job;
            panic!(
                "no log for {PATIENCE:?} after {} lines (the last {:?}); the job: {job:?}",
                lines.len(),
                lines.last()
            );
        };
        let Some(batch) = batch.unwrap() else { break };
        if lines.is_empty() && !batch.lines.is_empty() {
            std::fs::write(&release, "").unwrap_or_else(|err| panic!("{}: {err}", release.display()));
        }
        lines.extend(batch.lines);
    }
    let job = stack.wait_ended(&id).await;
    let texts: Vec<&str> = lines.iter().map(|line| line.text.as_str()).collect();
    assert_eq!(
        job.state(),
        pb::JobState::Succeeded,
        "{job:?}\nlast lines: {:?}",
        &texts[texts.len().saturating_sub(3)..]
    );
    let expected: Vec<String> = (1..=200_000)
        .map(|n| n.to_string())
        .chain(["the first line reached the follower while the process ran".to_owned()])
        .collect();
    assert!(texts == expected, "every line, once, in order; {} lines, last {:?}", texts.len(), texts.last());
    let sequences: Vec<u64> = lines.iter().map(|line| line.sequence).collect();
    assert!(sequences.windows(2).all(|w| w[1] == w[0] + 1), "sequences without gaps");
    stop.drain.cancel();
    agent.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_process_and_its_container() {
    let mut stack = Stack::start().await;
    let (stop, agent) = stack.agent().await;
    let source = r#"return pipeline.define {
  name = "sleepy",
  stages = { { name = "wait", script = function()
    process.run { cmd = "sh", args = { "-c", "echo going to sleep; exec sleep 120" } }
  end } },
}"#;
    stack.create(source, "sleepy.lua").await;
    let id = stack.launch("sleepy", &[]).await;
    // The process itself says it runs.
    stack.logged(&id, "going to sleep").await;
    let job_id = uuid::Uuid::parse_str(&id).unwrap();
    assert_eq!(stack.env.containers_of(job_id).await, 1, "the running process has its container");
    stack.jobs.cancel_job(pb::CancelJobRequest { job_id: id.clone() }).await.unwrap();
    let job = stack.wait_ended(&id).await;
    assert_eq!(job.state(), pb::JobState::Cancelled, "{job:?}");
    stack.no_container_left(job_id).await;
    stop.drain.cancel();
    agent.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runner_loses_its_job_to_the_next_and_leaves_no_container() {
    let mut stack = Stack::start().await;
    let source = r#"return pipeline.define {
  name = "survive",
  stages = { { name = "work", script = function()
    process.run { cmd = "sh", args = { "-c", "echo working; sleep 4" } }
    log.info("done")
  end } },
}"#;
    stack.create(source, "survive.lua").await;
    let mut runner = stack.runner_process();
    let id = stack.launch("survive", &[]).await;
    let job_id = uuid::Uuid::parse_str(&id).unwrap();
    // Killed while its process runs, in a container of the job.
    stack.logged(&id, "working").await;
    assert_eq!(stack.env.containers_of(job_id).await, 1, "the running process has its container");
    runner.signal("KILL");
    assert!(!runner.exit().await.success(), "SIGKILL ends the runner");
    // The orchestrator requeues the job once its lease expires.
    stack.wait(&id, "was requeued", |job| job.attempt == 2).await;
    // The runner comes back: it removes what the killed one left, and runs attempt 2.
    let mut runner = stack.runner_process();
    let job = stack.wait_ended(&id).await;
    assert_eq!(job.state(), pb::JobState::Succeeded, "{job:?}");
    assert_eq!(job.attempt, 2);
    assert_eq!(stack.env.containers_of(job_id).await, 0, "no container of the job may be left");
    runner.signal("TERM");
    assert!(runner.exit().await.success());
}

/// What the runner says when a first signal makes it drain (runner-agent/src/main.rs).
const DRAINING: &str = "draining: finishing running jobs";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_a_second_signal_stops_now() {
    let mut stack = Stack::start().await;
    let drainable = r#"return pipeline.define {
  name = "drainable",
  stages = { { name = "work", script = function()
    process.run { cmd = "sh", args = { "-c", "echo working; sleep 3" } }
  end } },
}"#;
    // Long enough that only the second signal can end it.
    let stoppable = r#"return pipeline.define {
  name = "stoppable",
  stages = { { name = "work", script = function()
    process.run { cmd = "sh", args = { "-c", "echo working; exec sleep 120" } }
  end } },
}"#;
    stack.create(drainable, "drainable.lua").await;
    stack.create(stoppable, "stoppable.lua").await;
    let mut runner = stack.runner_process();
    let first = stack.launch("drainable", &[]).await;
    stack.logged(&first, "working").await;
    runner.signal("TERM");
    runner.logged(DRAINING).await;
    let job = stack.wait_ended(&first).await;
    assert_eq!(job.state(), pb::JobState::Succeeded, "a draining runner finishes its job: {job:?}");
    assert!(runner.exit().await.success());

    let mut runner = stack.runner_process();
    let second = stack.launch("stoppable", &[]).await;
    stack.logged(&second, "working").await;
    runner.signal("TERM");
    // The second signal must come after the first was handled, not be merged with it.
    runner.logged(DRAINING).await;
    runner.signal("TERM");
    runner.logged("stopping now").await;
    let job = stack.wait_ended(&second).await;
    assert_eq!(job.state(), pb::JobState::Failed, "a runner stopped now reports its job failed: {job:?}");
    assert!(job.message.contains("runner was stopped"), "{}", job.message);
    assert!(runner.exit().await.success());
}

/// Follows a job's log until it ends; each line with when it arrived.
async fn follow_with(mut logs: LogServiceClient<Channel>, id: String) -> Vec<(pb::LogLine, std::time::SystemTime)> {
    let request = pb::StreamLogsRequest { job_id: id, from_sequence: 1, follow: true };
    let mut stream = logs.stream_logs(request).await.unwrap().into_inner();
    let mut lines = Vec::new();
    while let Some(batch) = tokio::time::timeout(PATIENCE, stream.message()).await.unwrap().unwrap() {
        let now = std::time::SystemTime::now();
        lines.extend(batch.lines.into_iter().map(|line| (line, now)));
    }
    lines
}

fn system_time(seconds: i64, nanos: i32) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::new(seconds as u64, nanos as u32)
}

/// The issue's attack: a 50 MB line without a newline, then a 9 MiB `log.info`. Each is
/// cut to one line with a marker, the batches fit the message limit, and so the runner's
/// only stream keeps flowing: the job succeeds, its follower and a replay see the same
/// lines, and another job on the same runner streams all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_output_neither_wedges_the_stream_nor_stops_other_jobs() {
    const FLOOD: usize = 50 * 1024 * 1024;
    const TICKS: usize = 200;
    let mut stack = Stack::start().await;
    let (stop, agent) = stack.agent().await;
    let ticker = format!(
        r#"return pipeline.define {{
  name = "ticker",
  stages = {{ {{ name = "tick", script = function()
    process.run {{ cmd = "sh", args = {{ "-c", "i=1; while [ $i -le {TICKS} ]; do echo tick $i; i=$((i+1)); sleep 0.1; done" }} }}
  end }} }},
}}"#
    );
    let flood = format!(
        r#"return pipeline.define {{
  name = "flood",
  stages = {{
    {{ name = "flood", script = function()
      process.run {{ cmd = "sh", args = {{ "-c", "head -c {FLOOD} /dev/zero | tr '\\0' x" }} }}
      log.info(string.rep("y", 9 * 1024 * 1024))
    end }},
    {{ name = "normal", script = function()
      log.info("normal 1")
      process.run {{ cmd = "echo", args = {{ "normal 2" }} }}
    end }},
  }},
}}"#
    );
    stack.create(&ticker, "ticker.lua").await;
    stack.create(&flood, "flood.lua").await;

    let ticking = stack.launch("ticker", &[]).await;
    let ticks = tokio::spawn(follow_with(stack.logs.clone(), ticking.clone()));
    stack
        .wait(&ticking, "started its stage", |job| job.stages.iter().any(|s| s.state() == pb::StageState::Running))
        .await;

    let big = stack.launch("flood", &[]).await;
    let follower = tokio::spawn(follow_with(stack.logs.clone(), big.clone()));
    let job = stack.wait_ended(&big).await;
    assert_eq!(job.state(), pb::JobState::Succeeded, "{job:?}");
    let states: Vec<pb::StageState> = job.stages.iter().map(|s| s.state()).collect();
    assert_eq!(states, [pb::StageState::Succeeded, pb::StageState::Succeeded]);
    let (start, end) = (job.start_time.unwrap(), job.end_time.unwrap());
    let ran = (system_time(start.seconds, start.nanos), system_time(end.seconds, end.nanos));

    // The follower: each long line cut once with its marker, then the normal stage's lines.
    let lines = follower.await.unwrap();
    let expected = [
        rivet_core::text::truncate(&"x".repeat(FLOOD), rivet_core::text::MAX_LOG_LINE_BYTES).into_owned(),
        rivet_core::text::truncate(&"y".repeat(9 * 1024 * 1024), rivet_core::text::MAX_LOG_LINE_BYTES).into_owned(),
        "normal 1".to_owned(),
        "normal 2".to_owned(),
    ];
    assert_eq!(texts(&lines), expected, "lengths {:?}", lines.iter().map(|(l, _)| l.text.len()).collect::<Vec<_>>());
    assert!(expected[0].ends_with(&format!("[truncated {} bytes]", FLOOD - expected[0].find(' ').unwrap())));
    let stages: Vec<&str> = lines.iter().map(|(l, _)| l.stage.as_str()).collect();
    assert_eq!(stages, ["flood", "flood", "normal", "normal"]);
    let sequences: Vec<u64> = lines.iter().map(|(l, _)| l.sequence).collect();
    assert_eq!(sequences, [1, 2, 3, 4]);

    // A replay from sequence 1 returns the same lines.
    let request = pb::StreamLogsRequest { job_id: big.clone(), from_sequence: 1, follow: false };
    let mut replay = stack.logs.stream_logs(request).await.unwrap().into_inner();
    let mut replayed = Vec::new();
    while let Some(batch) = replay.message().await.unwrap() {
        replayed.extend(batch.lines.into_iter().map(|line| (line.sequence, line.stage, line.text)));
    }
    let followed: Vec<(u64, String, String)> =
        lines.into_iter().map(|(line, _)| (line.sequence, line.stage, line.text)).collect();
    assert_eq!(replayed, followed);

    // The other job streamed while the flood ran, and lost nothing.
    let ticked = stack.wait_ended(&ticking).await;
    assert_eq!(ticked.state(), pb::JobState::Succeeded, "{ticked:?}");
    let ticks = ticks.await.unwrap();
    let expected: Vec<String> = (1..=TICKS).map(|i| format!("tick {i}")).collect();
    assert_eq!(texts(&ticks), expected, "every tick, once, in order");
    let during = ticks.iter().filter(|(_, at)| *at > ran.0 && *at < ran.1).count();
    assert!(during > 0, "no tick reached its follower while the flood ran ({:?} to {:?})", ran.0, ran.1);
    stop.drain.cancel();
    agent.await.unwrap();
}

/// A script stuck inside one call (`fault.block`, from the `fault-injection` feature the
/// tests turn on) is ended by its stage's timeout through the whole stack: the job is
/// reported timed out on time, and the runner, with room for one job only, takes the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_script_times_out_and_the_runner_takes_the_next_job() {
    let mut stack = Stack::start().await;
    let runner = PodmanRunner::connect(stack.env.config.clone()).await.unwrap();
    let agent = Agent::new(AgentConfig { capacity: 1, ..stack.agent_config() }, Arc::new(runner)).unwrap();
    let stop = Stop::default();
    let running = stop.clone();
    let agent = tokio::spawn(async move { agent.run(running).await.unwrap() });
    let stuck = r#"return pipeline.define {
  name = "stuck",
  stages = {
    { name = "block", timeout = 2, script = function() log.info("blocking") fault.block(120) end },
    { name = "later", script = function() log.info("later ran") end },
  },
}"#;
    let quick = r#"return pipeline.define { name = "quick", stages = { { name = "s", script = function()
    log.info("next job ran")
end } } }"#;
    stack.create(stuck, "stuck.lua").await;
    stack.create(quick, "quick.lua").await;

    let id = stack.launch("stuck", &[]).await;
    let job = stack.wait_ended(&id).await;
    assert_eq!(job.state(), pb::JobState::TimedOut, "{job:?}");
    // Ended by the stage's timeout, not by the call returning: the stage's recorded run is
    // shorter than the block (a logical bound, not a timing threshold: 2 s against 120 s).
    let block = &job.stages[0];
    let (Some(start), Some(end)) = (&block.start_time, &block.end_time) else {
        panic!("the stage has no start or end time: {block:?}")
    };
    assert!(end.seconds - start.seconds < 120, "the stage ran {}s, as long as the block", end.seconds - start.seconds);
    let states: Vec<pb::StageState> = job.stages.iter().map(|s| s.state()).collect();
    assert_eq!(states, [pb::StageState::TimedOut, pb::StageState::Skipped]);
    assert!(job.message.contains("timed out after 2s") && job.message.contains("abandoned"), "{}", job.message);

    let next = stack.launch("quick", &[]).await;
    let lines = stack.follow(&next).await;
    let job = stack.wait_ended(&next).await;
    assert_eq!(job.state(), pb::JobState::Succeeded, "{job:?}");
    assert_eq!(texts(&lines), ["next job ran"]);
    stop.drain.cancel();
    agent.await.unwrap();
}
