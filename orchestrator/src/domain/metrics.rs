//! The orchestrator's Prometheus metrics, served on `[metrics] listen` (see
//! `rivet_telemetry::metrics`). Every label value comes from a bounded set: job and stage
//! states, requeue reasons, served RPC methods, and at most [`QUEUE_GROUPS`] runner-tag sets
//! (the rest are summed under `other`). No job or runner id is ever a label.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rivet_telemetry::rpc::RpcMetrics;
use tokio_util::sync::CancellationToken;

use crate::domain::orchestrator::Orchestrator;
use crate::domain::store::{JobRecord, QueueGroup};

/// The most runner-tag sets the queue gauges tell apart.
pub const QUEUE_GROUPS: usize = 32;

/// How often the queue and runner gauges are refreshed.
const REFRESH: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TagsLabel {
    tags: String,
}

/// Why a job went back to the queue (the `reason` label of `rivet_jobs_requeued_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Its lease expired: the runner vanished.
    LeaseExpired,
    /// Its runner came back without it.
    RunnerForgot,
    /// Its runner refused it.
    RunnerRejected,
    /// The runner went away before it received the job.
    NotDelivered,
    /// Its runner's credential was revoked.
    RunnerRevoked,
}

impl Requeue {
    /// Every reason.
    const ALL: [Requeue; 5] = [
        Requeue::LeaseExpired,
        Requeue::RunnerForgot,
        Requeue::RunnerRejected,
        Requeue::NotDelivered,
        Requeue::RunnerRevoked,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Requeue::LeaseExpired => "lease_expired",
            Requeue::RunnerForgot => "runner_forgot",
            Requeue::RunnerRejected => "runner_rejected",
            Requeue::NotDelivered => "not_delivered",
            Requeue::RunnerRevoked => "runner_revoked",
        }
    }
}

/// The orchestrator's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    launched: Counter,
    finished: Family<StateLabel, Counter>,
    assignment_latency: Histogram,
    job_duration: Family<StateLabel, Histogram>,
    queue_depth: Family<TagsLabel, Gauge>,
    queue_oldest: Family<TagsLabel, Gauge<f64, AtomicU64>>,
    runners_connected: Gauge,
    free_slots: Gauge,
    lease_expiries: Counter,
    requeued: Family<ReasonLabel, Counter>,
    log_lines: Counter,
    log_bytes: Counter,
    reports_rejected: Counter,
    rpc: RpcMetrics,
    /// The tag sets the queue gauges showed last time.
    shown: std::sync::Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Seconds, from 10 ms to about 3 hours.
fn durations() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 3.0, 14))
}

impl Metrics {
    /// A registry of every orchestrator metric; `methods` are the RPC paths served.
    pub fn new(methods: impl IntoIterator<Item = &'static str>) -> Metrics {
        let mut registry = Registry::default();
        let launched = Counter::default();
        registry.register("rivet_jobs_launched", "Jobs launched (created) through this replica", launched.clone());
        let finished = Family::<StateLabel, Counter>::default();
        registry.register(
            "rivet_jobs_finished",
            "Jobs that ended, by final state, seen by this replica",
            finished.clone(),
        );
        let assignment_latency = Histogram::new(exponential_buckets(0.001, 3.0, 15));
        registry.register(
            "rivet_assignment_latency_seconds",
            "From a job's launch to its first assignment to a runner",
            assignment_latency.clone(),
        );
        let job_duration = Family::<StateLabel, Histogram>::new_with_constructor(durations as fn() -> Histogram);
        registry.register(
            "rivet_job_duration_seconds",
            "From a job's start on a runner to its end, by final state",
            job_duration.clone(),
        );
        let queue_depth = Family::<TagsLabel, Gauge>::default();
        registry.register("rivet_queue_depth", "Queued jobs, by the runner tags they need", queue_depth.clone());
        let queue_oldest = Family::<TagsLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "rivet_queue_oldest_age_seconds",
            "How long the oldest queued job has waited, by the runner tags it needs",
            queue_oldest.clone(),
        );
        let runners_connected = Gauge::default();
        registry.register("rivet_runners_connected", "Runners connected to this replica", runners_connected.clone());
        let free_slots = Gauge::default();
        registry.register(
            "rivet_runner_free_slots",
            "Free job slots of the runners connected to this replica (draining runners count none)",
            free_slots.clone(),
        );
        let lease_expiries = Counter::default();
        registry.register(
            "rivet_lease_expiries",
            "Job leases that expired (the runner vanished)",
            lease_expiries.clone(),
        );
        let requeued = Family::<ReasonLabel, Counter>::default();
        registry.register("rivet_jobs_requeued", "Jobs put back in the queue, by reason", requeued.clone());
        let log_lines = Counter::default();
        registry.register("rivet_log_lines_ingested", "Log lines stored from runners", log_lines.clone());
        let log_bytes = Counter::default();
        registry.register("rivet_log_bytes_ingested", "Bytes of log text stored from runners", log_bytes.clone());
        let reports_rejected = Counter::default();
        registry.register(
            "rivet_runner_reports_rejected",
            "Runner reports refused (stale assignment, a job not assigned to the runner)",
            reports_rejected.clone(),
        );
        let rpc = RpcMetrics::register(&mut registry, methods);
        // Every known label value starts at 0, so that a rate or an alert sees the first
        // increment, and every family is in the exposition from the start.
        for state in rivet_core::JobState::ALL.iter().filter(|state| state.is_terminal()) {
            drop(finished.get_or_create(&StateLabel { state: state.as_str() }));
        }
        for reason in Requeue::ALL {
            drop(requeued.get_or_create(&ReasonLabel { reason: reason.as_str() }));
        }
        Metrics {
            inner: Arc::new(Inner {
                registry,
                launched,
                finished,
                assignment_latency,
                job_duration,
                queue_depth,
                queue_oldest,
                runners_connected,
                free_slots,
                lease_expiries,
                requeued,
                log_lines,
                log_bytes,
                reports_rejected,
                rpc,
                shown: Default::default(),
            }),
        }
    }

    /// The exposition text of every metric.
    pub fn render(&self) -> String {
        rivet_telemetry::metrics::render(&self.inner.registry)
    }

    /// The RPC metrics, for the server's layer.
    pub fn rpc(&self) -> RpcMetrics {
        self.inner.rpc.clone()
    }

    pub(crate) fn launched(&self) {
        self.inner.launched.inc();
    }

    /// A job was assigned: its first assignment measures the launch-to-assignment latency.
    pub(crate) fn assigned(&self, job: &JobRecord) {
        if job.attempt == 1 {
            self.inner.assignment_latency.observe(seconds_since(job.created_at, Utc::now()));
        }
    }

    /// A job reached a final state.
    pub(crate) fn ended(&self, job: &JobRecord) {
        let state = StateLabel { state: job.state.as_str() };
        self.inner.finished.get_or_create(&state).inc();
        if let (Some(started), Some(finished)) = (job.started_at, job.finished_at) {
            self.inner.job_duration.get_or_create(&state).observe(seconds_since(started, finished));
        }
    }

    pub(crate) fn requeued(&self, reason: Requeue) {
        if reason == Requeue::LeaseExpired {
            self.inner.lease_expiries.inc();
        }
        self.inner.requeued.get_or_create(&ReasonLabel { reason: reason.as_str() }).inc();
    }

    pub(crate) fn logs_ingested(&self, lines: u64, bytes: u64) {
        self.inner.log_lines.inc_by(lines);
        self.inner.log_bytes.inc_by(bytes);
    }

    pub(crate) fn report_rejected(&self) {
        self.inner.reports_rejected.inc();
    }

    /// Sets the queue gauges from `groups` (largest first): the first [`QUEUE_GROUPS`]
    /// by their tags, the rest summed under `other`; tag sets no longer queued disappear,
    /// but for `none` (jobs any runner may take), which is always there, 0 when empty.
    pub fn set_queue(&self, groups: &[QueueGroup], now: DateTime<Utc>) {
        let mut shown = BTreeMap::<String, (i64, f64)>::new();
        shown.insert("none".to_owned(), (0, 0.0));
        for (index, group) in groups.iter().enumerate() {
            let key = if index < QUEUE_GROUPS { tags_label(&group.tags) } else { "other".to_owned() };
            let entry = shown.entry(key).or_insert((0, 0.0));
            entry.0 += i64::try_from(group.depth).unwrap_or(i64::MAX);
            entry.1 = entry.1.max(seconds_since(group.oldest, now));
        }
        let mut previous = self.inner.shown.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for gone in previous.iter().filter(|tags| !shown.contains_key(*tags)) {
            let label = TagsLabel { tags: gone.clone() };
            self.inner.queue_depth.remove(&label);
            self.inner.queue_oldest.remove(&label);
        }
        for (tags, (depth, oldest)) in &shown {
            let label = TagsLabel { tags: tags.clone() };
            self.inner.queue_depth.get_or_create(&label).set(*depth);
            self.inner.queue_oldest.get_or_create(&label).set(*oldest);
        }
        *previous = shown.into_keys().collect();
    }

    fn set_runners(&self, connected: usize, free: u64) {
        self.inner.runners_connected.set(i64::try_from(connected).unwrap_or(i64::MAX));
        self.inner.free_slots.set(i64::try_from(free).unwrap_or(i64::MAX));
    }
}

/// The label of a tag set: `key=value` pairs in key order, comma-separated; `none` for a
/// job any runner may take.
fn tags_label(tags: &BTreeMap<String, String>) -> String {
    if tags.is_empty() {
        return "none".to_owned();
    }
    tags.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(",")
}

fn seconds_since(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).to_std().map(|elapsed| elapsed.as_secs_f64()).unwrap_or(0.0)
}

/// Refreshes the gauges (queue by tags, this replica's runners) until `shutdown`.
pub async fn run(orchestrator: Orchestrator, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let metrics = orchestrator.metrics();
        let runners = orchestrator.registry().snapshot();
        metrics.set_runners(runners.len(), runners.iter().map(|runner| u64::from(runner.free())).sum());
        // One more group than shown tells whether `other` is needed.
        match orchestrator.store().queue_summary(QUEUE_GROUPS as u32 * 4).await {
            Ok(groups) => metrics.set_queue(&groups, Utc::now()),
            Err(err) => tracing::debug!(error = %err, "cannot read the queue for its gauges"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(tags: &[(&str, &str)], depth: u64, age: i64, now: DateTime<Utc>) -> QueueGroup {
        QueueGroup {
            tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            depth,
            oldest: now - chrono::Duration::seconds(age),
        }
    }

    #[test]
    fn queue_gauges_are_bounded_and_forget_empty_queues() {
        let metrics = Metrics::new([]);
        let now = Utc::now();
        let mut groups: Vec<QueueGroup> =
            (0..40).map(|index| group(&[("pool", &format!("p{index:02}"))], 1, index, now)).collect();
        groups.insert(0, group(&[], 5, 3, now));
        metrics.set_queue(&groups, now);
        let scrape = rivet_telemetry::metrics::Scrape::parse(&metrics.render()).expect("parses");
        assert_eq!(scrape.sum("rivet_queue_depth", &[]), 45.0);
        assert_eq!(scrape.sum("rivet_queue_depth", &[("tags", "none")]), 5.0);
        // 32 groups by name (none and p00..p30), p31..p39 under `other`.
        assert_eq!(scrape.sum("rivet_queue_depth", &[("tags", "other")]), 9.0);
        assert_eq!(scrape.sum("rivet_queue_oldest_age_seconds", &[("tags", "other")]), 39.0);
        assert_eq!(scrape.sum("rivet_queue_depth", &[("tags", "pool=p30")]), 1.0);

        metrics.set_queue(&[group(&[("os", "linux")], 2, 1, now)], now);
        let text = metrics.render();
        assert!(!text.contains("pool=p00"), "{text}");
        let scrape = rivet_telemetry::metrics::Scrape::parse(&text).expect("parses");
        assert_eq!(scrape.sum("rivet_queue_depth", &[]), 2.0);
        assert_eq!(scrape.sum("rivet_queue_depth", &[("tags", "none")]), 0.0);
        assert!(scrape.has("rivet_queue_depth"), "an empty queue still shows");
        assert_eq!(scrape.sum("rivet_queue_depth", &[("tags", "os=linux")]), 2.0);
    }
}
