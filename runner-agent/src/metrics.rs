//! The runner's Prometheus metrics, served on `[metrics] listen` (see
//! `rivet_telemetry::metrics`). One set per process: the executor measures Podman calls and
//! stages deep inside a job's thread, where no handle is passed. Labels are bounded: job
//! and stage states, and the Podman call names below.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rivet_core::{JobState, StageState};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabel {
    call: &'static str,
}

/// A Podman API call the runner times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodmanCall {
    /// Pulling (or checking) an image.
    Pull,
    /// Creating a container.
    Create,
    /// Starting a container.
    Start,
    /// Removing a container.
    Remove,
}

impl PodmanCall {
    fn as_str(self) -> &'static str {
        match self {
            PodmanCall::Pull => "pull",
            PodmanCall::Create => "create",
            PodmanCall::Start => "start",
            PodmanCall::Remove => "remove",
        }
    }
}

/// The runner's metrics.
pub struct RunnerMetrics {
    registry: Registry,
    jobs_running: Gauge,
    jobs_finished: Family<StateLabel, Counter>,
    stage_duration: Family<StateLabel, Histogram>,
    podman: Family<CallLabel, Histogram>,
    outbox_bytes: Gauge,
    reconnects: Counter,
}

impl std::fmt::Debug for RunnerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerMetrics").finish_non_exhaustive()
    }
}

/// This process's metrics.
pub fn get() -> &'static RunnerMetrics {
    static METRICS: OnceLock<RunnerMetrics> = OnceLock::new();
    METRICS.get_or_init(RunnerMetrics::new)
}

impl RunnerMetrics {
    fn new() -> RunnerMetrics {
        let mut registry = Registry::default();
        let jobs_running = Gauge::default();
        registry.register("rivet_runner_jobs_running", "Jobs this runner is running", jobs_running.clone());
        let jobs_finished = Family::<StateLabel, Counter>::default();
        registry.register(
            "rivet_runner_jobs_finished",
            "Jobs this runner ran to their end, by state",
            jobs_finished.clone(),
        );
        let stage_duration = Family::<StateLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 3.0, 14))
        });
        registry.register(
            "rivet_stage_duration_seconds",
            "How long stages ran on this runner, by their final state",
            stage_duration.clone(),
        );
        let podman = Family::<CallLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 3.0, 13))
        });
        registry.register("rivet_podman_call_duration_seconds", "Podman API calls, by call", podman.clone());
        let outbox_bytes = Gauge::default();
        registry.register(
            "rivet_runner_outbox_bytes",
            "Bytes of log lines held (in memory and spilled) until the orchestrator confirms them",
            outbox_bytes.clone(),
        );
        let reconnects = Counter::default();
        registry.register(
            "rivet_runner_reconnects",
            "Times the stream to the orchestrator was opened again",
            reconnects.clone(),
        );
        // Known label values start at 0: a rate or an alert sees the first increment.
        for state in JobState::ALL.iter().filter(|state| state.is_terminal()) {
            drop(jobs_finished.get_or_create(&StateLabel { state: state.as_str() }));
        }
        for call in [PodmanCall::Pull, PodmanCall::Create, PodmanCall::Start, PodmanCall::Remove] {
            drop(podman.get_or_create(&CallLabel { call: call.as_str() }));
        }
        RunnerMetrics { registry, jobs_running, jobs_finished, stage_duration, podman, outbox_bytes, reconnects }
    }

    /// The exposition text of every metric.
    pub fn render(&self) -> String {
        rivet_telemetry::metrics::render(&self.registry)
    }

    pub(crate) fn set_jobs_running(&self, running: usize) {
        self.jobs_running.set(i64::try_from(running).unwrap_or(i64::MAX));
    }

    pub(crate) fn job_finished(&self, state: JobState) {
        self.jobs_finished.get_or_create(&StateLabel { state: state.as_str() }).inc();
    }

    pub(crate) fn stage_finished(&self, state: StageState, took: Duration) {
        self.stage_duration.get_or_create(&StateLabel { state: state.as_str() }).observe(took.as_secs_f64());
    }

    pub(crate) fn podman_call(&self, call: PodmanCall, took: Duration) {
        self.podman.get_or_create(&CallLabel { call: call.as_str() }).observe(took.as_secs_f64());
    }

    pub(crate) fn set_outbox_bytes(&self, bytes: u64) {
        self.outbox_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub(crate) fn reconnected(&self) {
        self.reconnects.inc();
    }
}
