//! What running a stage costs on top of Podman, and how fast a process's output reaches a
//! follower through the real agent and an orchestrator.
//!
//! Run with `cargo bench -p rivet-runner --bench executor` (or `just bench`); it needs
//! Podman and the test image (`deploy/test-image/build.sh`, built here when missing).
//! Arguments after `--`, or `RIVET_BENCH_ONLY`, pick scenarios (`overhead`, `logs`). Sizes,
//! with their defaults: `RIVET_BENCH_STAGE_RUNS` (10), `RIVET_BENCH_LOG_LINES` (200000);
//! `RIVET_BENCH_BACKENDS` (`sqlite`, or `sqlite,postgres`) picks the orchestrator's backends
//! for the log scenario. The bench measures and prints; it asserts nothing about speed.

mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use rivet_core::{Assignment, JobState};
use rivet_runner::agent::{Agent, AgentConfig, JobRunner, Stop};
use rivet_runner::executor::{PodmanRunner, run_job};
use rivet_runner::job::{EventSink, JobEvent, JobOutcome, JobSpec};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use support::{Api, Backend, Env, Orchestrator, TEST_IMAGE, load_context, millis, rate, selected, size, spread, table};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    println!("rivet-runner executor benchmarks; at the start: {}", load_context());
    let env = Env::new().await;
    println!("podman: {}", env.config.podman_socket);
    if selected("overhead") {
        overhead(&env).await;
    }
    if selected("logs") {
        for backend in Backend::selected() {
            log_throughput(&env, backend).await;
        }
    }
    println!("\nat the end: {}", load_context());
}

/// A one-stage pipeline whose script is `body`.
fn pipeline(name: &str, body: &str) -> String {
    format!(
        "return pipeline.define {{ name = \"{name}\", stages = {{ {{ name = \"s\", container = \"{TEST_IMAGE}\", \
         script = function() {body} end }} }} }}"
    )
}

/// Per-stage overhead: `podman run --rm <image> true` from the command line, against a
/// one-stage job running `process.run{cmd="true"}` through `run_job`, and a stage that runs
/// no process. One unmeasured run of each comes first.
async fn overhead(env: &Env) {
    let runs = size("RIVET_BENCH_STAGE_RUNS", 10).max(1);
    let mut cli = Vec::new();
    for index in 0..=runs {
        let start = Instant::now();
        let status = Command::new("podman")
            .args(["run", "--rm", TEST_IMAGE, "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run podman");
        let elapsed = start.elapsed();
        assert!(status.success(), "podman run failed");
        if index > 0 {
            cli.push(elapsed);
        }
    }
    let with_process = time_jobs(env, &pipeline("one-process", "process.run{ cmd = \"true\" }"), runs).await;
    let without = time_jobs(env, &pipeline("no-process", ""), runs).await;
    let two =
        time_jobs(env, &pipeline("two-processes", "process.run{ cmd = \"true\" } process.run{ cmd = \"true\" }"), runs)
            .await;
    let mut rows = Vec::new();
    let mut medians = Vec::new();
    for (what, samples) in [
        ("podman run --rm IMAGE true (CLI)", &cli),
        ("run_job: 1 stage, process.run{cmd=\"true\"}", &with_process),
        ("run_job: 1 stage, 2 × process.run{cmd=\"true\"}", &two),
        ("run_job: 1 stage, no process", &without),
    ] {
        let (median, min, max) = spread(samples);
        medians.push(median);
        rows.push(vec![what.to_owned(), samples.len().to_string(), millis(median), millis(min), millis(max)]);
    }
    table(&format!("Per-stage overhead ({runs} runs each, medians)"), &["what", "runs", "median", "min", "max"], &rows);
    let signed = |a: Duration, b: Duration| {
        if a >= b { format!("+{}", millis(a - b)) } else { format!("-{}", millis(b - a)) }
    };
    println!("  a stage with one process vs `podman run`: {}", signed(medians[1], medians[0]));
    println!("  each further process.run in a stage:      {}", signed(medians[2], medians[1]));
    println!("  a stage with one process vs none:         {}", signed(medians[1], medians[3]));
}

/// Runs `source` `runs` times (plus one unmeasured) through `run_job`; how long each took.
async fn time_jobs(env: &Env, source: &str, runs: usize) -> Vec<Duration> {
    let definition = rivet_core::check(source, "bench.lua").expect("a valid pipeline");
    let inputs = rivet_core::resolve(&definition.inputs, &BTreeMap::new()).expect("no inputs");
    let mut samples = Vec::new();
    for index in 0..=runs {
        let spec = JobSpec {
            assignment: Assignment { job_id: Uuid::new_v4(), attempt: 1, epoch: 1 },
            pipeline_name: definition.name.clone(),
            source: source.to_owned(),
            file_name: "bench.lua".to_owned(),
            inputs: inputs.clone(),
            secrets: BTreeMap::new(),
            first_sequence: 1,
            timeout: None,
            plugins: Vec::new(),
            trace: None,
            origin: rivet_core::JobOrigin::Api { caller: None },
        };
        let start = Instant::now();
        let outcome = run_job(spec, &env.config, &env.podman, Arc::new(Discard), CancellationToken::new()).await;
        let elapsed = start.elapsed();
        assert_eq!(outcome.state, JobState::Succeeded, "{outcome:?}");
        if index > 0 {
            samples.push(elapsed);
        }
    }
    samples
}

/// A sink that drops every event.
struct Discard;

impl EventSink for Discard {
    fn emit(&self, _: Assignment, _: JobEvent) {}
}

/// Log throughput: a job printing `RIVET_BENCH_LOG_LINES` lines (`seq 1 N` in busybox) runs
/// through the real agent with the Podman executor, connected to an orchestrator in this
/// process; a `LogService` follower is attached right after the launch. The executor's
/// sink is wrapped to time its first and last line, which splits the path in two: Podman
/// and the executor, then the agent, the orchestrator's store and the follower.
async fn log_throughput(env: &Env, backend: Backend) {
    let lines = size("RIVET_BENCH_LOG_LINES", 200_000);
    let orchestrator = Orchestrator::start(backend).await;
    let mut api = Api::connect(orchestrator.addr).await;
    api.create(&pipeline("seq", &format!("process.run{{ cmd = \"seq\", args = {{ \"1\", \"{lines}\" }} }}"))).await;
    let state = tempfile::tempdir().expect("a state directory");
    let config = AgentConfig {
        orchestrator_url: format!("http://{}", orchestrator.addr),
        name: Some("bench".to_owned()),
        capacity: 1,
        state_dir: state.path().to_owned(),
        executor: env.config.clone(),
        ..AgentConfig::default()
    };
    let podman = PodmanRunner::connect(env.config.clone()).await.expect("podman runner");
    let clock = Arc::new(Clock::default());
    let runner = Timed { inner: podman, clock: clock.clone() };
    let agent = Agent::new(config, Arc::new(runner)).expect("agent");
    let stop = Stop::default();
    let agent = tokio::spawn({
        let stop = stop.clone();
        async move { agent.run(stop).await }
    });

    let launched = Instant::now();
    let job = api.launch("seq").await;
    let mut follower = api.follow(&job).await;
    let last_text = lines.to_string();
    let (mut received, mut messages) = (0usize, 0usize);
    let followed = loop {
        let response = tokio::time::timeout(Duration::from_secs(120), follower.next())
            .await
            .expect("the follower stalled")
            .expect("the log stream ended early")
            .expect("log stream");
        messages += 1;
        received += response.lines.len();
        if response.lines.iter().any(|line| line.text == last_text) {
            break Instant::now();
        }
    };
    let done = loop {
        let done = api.job(&job).await;
        if done.state() == rivet_proto::v1::JobState::Succeeded {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.drain.cancel();
    agent.await.expect("agent task").expect("agent");

    let started = clock.started.lock().expect("clock").expect("the job started");
    let first = clock.first_line.lock().expect("clock").expect("a first line");
    let last = clock.last_line.lock().expect("clock").expect("a last line");
    let emitted = clock.lines.load(Ordering::Relaxed);
    let n = lines as f64;
    let rows = vec![
        vec!["launch → job started on the runner".to_owned(), millis(started - launched), "-".to_owned()],
        vec!["job started → first line out of the executor".to_owned(), millis(first - started), "-".to_owned()],
        vec!["executor: first line → last line emitted".to_owned(), millis(last - first), rate(n, last - first)],
        vec![
            "job started → follower has the last line".to_owned(),
            millis(followed - started),
            rate(n, followed - started),
        ],
        vec![
            "first line emitted → follower has the last line".to_owned(),
            millis(followed - first),
            rate(n, followed - first),
        ],
        vec![
            "last line emitted → follower has it".to_owned(),
            millis(followed.saturating_duration_since(last)),
            "-".to_owned(),
        ],
    ];
    table(
        &format!(
            "Log throughput, one process printing {lines} lines, agent → orchestrator ({}) → follower",
            backend.label()
        ),
        &["interval", "time", "lines/s"],
        &rows,
    );
    println!(
        "  attempt 1 emitted {emitted} lines; the follower received {received} in {messages} messages ({:.0} lines per message)",
        received as f64 / messages.max(1) as f64
    );
    let runs = clock.runs.load(Ordering::Relaxed);
    if done.attempt > 1 || runs > 1 {
        println!(
            "  NOTE: the job succeeded in attempt {}, the runner started it {runs} times; the times above are \
             attempt 1's. Its transitions:",
            done.attempt
        );
        for transition in &done.transitions {
            let at = transition.time.map_or(0.0, |t| t.seconds as f64 + f64::from(t.nanos) / 1e9);
            println!("    {at:.3} {:?}: {}", transition.state(), transition.message);
        }
    }
}

/// When the job's first attempt started, and when its first and last log lines left the
/// executor; and how many times the runner started the job.
#[derive(Default)]
struct Clock {
    runs: AtomicU64,
    started: Mutex<Option<Instant>>,
    first_line: Mutex<Option<Instant>>,
    last_line: Mutex<Option<Instant>>,
    lines: AtomicU64,
}

/// The Podman executor, with its sink wrapped by the clock.
struct Timed {
    inner: PodmanRunner,
    clock: Arc<Clock>,
}

impl JobRunner for Timed {
    fn run(
        &self,
        spec: JobSpec,
        sink: Arc<dyn EventSink>,
        cancel: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = JobOutcome> + Send + 'static>> {
        self.clock.runs.fetch_add(1, Ordering::Relaxed);
        self.clock.started.lock().expect("clock").get_or_insert_with(Instant::now);
        let sink = Arc::new(TimedSink { inner: sink, clock: self.clock.clone() });
        self.inner.run(spec, sink, cancel)
    }
}

struct TimedSink {
    inner: Arc<dyn EventSink>,
    clock: Arc<Clock>,
}

impl EventSink for TimedSink {
    fn emit(&self, assignment: Assignment, event: JobEvent) {
        if matches!(event, JobEvent::Log(_)) && assignment.attempt == 1 {
            let now = Instant::now();
            self.clock.first_line.lock().expect("clock").get_or_insert(now);
            *self.clock.last_line.lock().expect("clock") = Some(now);
            self.clock.lines.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.emit(assignment, event);
    }
}
