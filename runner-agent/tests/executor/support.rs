//! What the executor tests share: a Podman service, the test images, a configuration with
//! a private workspace root and runner instance, and a sink that records every event.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use podman_api::Podman;
use podman_api::opts::{ContainerListFilter, ContainerListOpts};
use rivet_core::{Assignment, FailureReason, JobState, LogLevel, LogLine, StageState};
use rivet_runner::config::ExecutorConfig;
use rivet_runner::executor::service::{self, Service};
use rivet_runner::executor::{LABEL_JOB, run_job};
use rivet_runner::job::{EventSink, JobEvent, JobOutcome, JobSpec};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const TEST_IMAGE: &str = "localhost/rivet-test:latest";
pub const NOSHELL_IMAGE: &str = "localhost/rivet-noshell:latest";

/// The sequence number tests start their jobs' logs at; not 1, to show it is honoured.
pub const FIRST_SEQUENCE: u64 = 100;

/// The system Podman socket, used when it is there.
const SYSTEM_SOCKET: &str = "unix:///run/podman/podman.sock";

/// A Podman service and a configuration for one test.
pub struct Env {
    pub podman: Podman,
    pub config: ExecutorConfig,
    _workspaces: tempfile::TempDir,
    _service: Option<Service>,
}

impl Env {
    pub async fn new() -> Env {
        ensure_images();
        let (podman, service, socket) = podman().await;
        let workspaces = tempfile::tempdir().expect("a temporary directory");
        let config = ExecutorConfig {
            podman_socket: socket,
            workspace_root: workspaces.path().join("workspaces"),
            instance: format!("test-{}", Uuid::new_v4()),
            cancel_grace_secs: 1,
            lua_time_budget_ms: 2_000,
            ..ExecutorConfig::default()
        };
        Env { podman, config, _workspaces: workspaces, _service: service }
    }

    /// The workspace root of this test's runner.
    pub fn workspace_root(&self) -> &Path {
        &self.config.workspace_root
    }

    /// Runs `source` with its inputs' defaults.
    pub async fn run(&self, source: &str) -> Run {
        self.run_with(source, &[], &[]).await
    }

    /// Runs `source` with the given raw inputs and secrets.
    pub async fn run_with(&self, source: &str, inputs: &[(&str, &str)], secrets: &[(&str, &str)]) -> Run {
        let spec = self.spec(source, inputs, secrets);
        self.run_spec(spec, CancellationToken::new()).await
    }

    pub fn spec(&self, source: &str, inputs: &[(&str, &str)], secrets: &[(&str, &str)]) -> JobSpec {
        let definition = rivet_core::check(source, "test.lua").unwrap_or_else(|err| panic!("invalid pipeline: {err}"));
        let raw: BTreeMap<String, String> = inputs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let inputs = rivet_core::resolve(&definition.inputs, &raw).unwrap_or_else(|err| panic!("bad inputs: {err:?}"));
        JobSpec {
            assignment: Assignment { job_id: Uuid::new_v4(), attempt: 1, epoch: 1 },
            pipeline_name: definition.name,
            source: source.to_owned(),
            file_name: "test.lua".to_owned(),
            inputs,
            secrets: secrets.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            first_sequence: FIRST_SEQUENCE,
            timeout: None,
            plugins: Vec::new(),
            trace: None,
            origin: rivet_core::JobOrigin::Api { caller: None },
        }
    }

    pub async fn run_spec(&self, spec: JobSpec, cancel: CancellationToken) -> Run {
        let sink = Arc::new(Collector::default());
        let assignment = spec.assignment;
        let outcome = run_job(spec, &self.config, &self.podman, sink.clone(), cancel).await;
        Run { assignment, outcome, events: sink.events() }
    }

    /// The containers that still carry `job`'s label.
    pub async fn containers_of(&self, job: Uuid) -> usize {
        let opts = ContainerListOpts::builder()
            .all(true)
            .filter([ContainerListFilter::LabelKeyVal(LABEL_JOB.to_owned(), job.to_string())])
            .build();
        self.podman.containers().list(&opts).await.expect("list containers").len()
    }
}

/// A finished job: its outcome and events.
#[derive(Debug)]
pub struct Run {
    pub assignment: Assignment,
    pub outcome: JobOutcome,
    pub events: Vec<JobEvent>,
}

impl Run {
    pub fn logs(&self) -> Vec<&LogLine> {
        self.events
            .iter()
            .filter_map(|event| match event {
                JobEvent::Log(line) => Some(line),
                _ => None,
            })
            .collect()
    }

    /// The log texts, in order.
    pub fn texts(&self) -> Vec<&str> {
        self.logs().iter().map(|line| line.text.as_str()).collect()
    }

    /// Whether some log line at `level` is exactly `text`.
    pub fn logged(&self, level: LogLevel, text: &str) -> bool {
        self.logs().iter().any(|line| line.level == level && line.text == text)
    }

    /// How `stage` ended: its state, failure reason and message. Panics unless it ended
    /// exactly once.
    pub fn stage(&self, stage: &str) -> (StageState, Option<FailureReason>, String) {
        let ends: Vec<_> = self
            .events
            .iter()
            .filter_map(|event| match event {
                JobEvent::StageFinished { stage: name, state, failure_reason, message, .. } if name == stage => {
                    Some((*state, *failure_reason, message.clone()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(ends.len(), 1, "stage `{stage}` should end once: {:#?}", self.events);
        ends.into_iter().next().expect("one end")
    }

    /// Whether `stage` was reported started.
    pub fn started(&self, stage: &str) -> bool {
        self.events.iter().any(|event| matches!(event, JobEvent::StageStarted { stage: name, .. } if name == stage))
    }

    pub fn assert_succeeded(&self) {
        assert_eq!(self.outcome.state, JobState::Succeeded, "{:#?}\nlogs: {:#?}", self.outcome, self.texts());
    }

    pub fn assert_failed(&self, reason: FailureReason, message_part: &str) {
        assert_eq!(self.outcome.state, JobState::Failed, "{:#?}\nlogs: {:#?}", self.outcome, self.texts());
        assert_eq!(self.outcome.failure_reason, Some(reason), "{:#?}", self.outcome);
        assert!(self.outcome.message.contains(message_part), "{:?} lacks {message_part:?}", self.outcome.message);
    }

    /// Checks that the log's sequence numbers start at [`FIRST_SEQUENCE`], have no gap, and
    /// end at the outcome's `last_sequence`.
    pub fn assert_sequences(&self) {
        let logs = self.logs();
        for (i, line) in logs.iter().enumerate() {
            assert_eq!(line.sequence, FIRST_SEQUENCE + i as u64, "line {i}: {line:?}");
            assert_eq!(line.attempt, self.assignment.attempt);
        }
        assert_eq!(self.outcome.last_sequence, FIRST_SEQUENCE + logs.len() as u64 - 1);
    }
}

/// Records every event, checking that each comes under the job's assignment.
#[derive(Default)]
pub struct Collector {
    events: Mutex<Vec<(Assignment, JobEvent)>>,
}

impl Collector {
    pub fn events(&self) -> Vec<JobEvent> {
        self.events.lock().expect("events").iter().map(|(_, event)| event.clone()).collect()
    }

    pub fn logged(&self, text: &str) -> bool {
        self.events
            .lock()
            .expect("events")
            .iter()
            .any(|(_, event)| matches!(event, JobEvent::Log(line) if line.text == text))
    }
}

impl EventSink for Collector {
    fn emit(&self, assignment: Assignment, event: JobEvent) {
        self.events.lock().expect("events").push((assignment, event));
    }
}

/// Waits until `condition` holds, for at most `limit`.
pub async fn wait_for(limit: Duration, mut condition: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !condition() {
        assert!(start.elapsed() < limit, "condition not met within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An example pipeline from the repository's `examples/`.
pub fn example(name: &str) -> String {
    let path = repo_root().join("examples").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_owned()
}

/// Builds the test images once per test process, when they are missing.
fn ensure_images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let present = [TEST_IMAGE, NOSHELL_IMAGE].iter().all(|image| {
            Command::new("podman").args(["image", "exists", image]).status().is_ok_and(|status| status.success())
        });
        if !present {
            let script = repo_root().join("deploy/test-image/build.sh");
            // Tests run in parallel processes: the lock keeps them from building at once.
            let status = Command::new("flock")
                .arg("/tmp/rivet-test-image.lock")
                .arg(&script)
                .status()
                .expect("run deploy/test-image/build.sh");
            assert!(status.success(), "deploy/test-image/build.sh failed");
        }
    });
}

/// A client of the Podman service the runner itself would use (the system socket, the
/// usual others, else a private service that lives as long as the test's `Env`).
async fn podman() -> (Podman, Option<Service>, String) {
    let (socket, service) =
        service::find_or_start(SYSTEM_SOCKET, &std::env::temp_dir()).await.expect("a podman service");
    let podman = Podman::new(&socket).expect("a podman client");
    (podman, service, socket)
}
