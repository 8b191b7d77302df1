//! The embedded mode's coordinator: leases, presence and fan-out inside one process.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use rivet_core::Assignment;
use tokio::time::Instant;
use uuid::Uuid;

use super::channel::{Gauge, Limits, Sender};
use super::subscription::Subscription;
use crate::domain::coord::{CoordResult, Coordinator, FanoutUsage, Topic};

/// Coordinates the replicas of a single process, which is to say one replica: the embedded
/// mode. Expiries use tokio's clock, so tests can drive them with paused time.
#[derive(Default)]
pub struct MemoryCoordinator {
    state: Mutex<State>,
    topics: Arc<Mutex<Topics>>,
    gauge: Arc<Gauge>,
}

#[derive(Default)]
struct State {
    leases: HashMap<Uuid, Lease>,
    runners: HashMap<Uuid, Presence>,
}

struct Lease {
    epoch: u64,
    expires: Instant,
}

struct Presence {
    replica: String,
    expires: Instant,
}

/// The channel of every topic that has subscribers.
type Topics = HashMap<Topic, Sender>;

impl MemoryCoordinator {
    /// An empty coordinator: no lease, nobody online, no subscriber.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The number of topics with a live channel; tests use it to check that channels don't
    /// leak.
    #[cfg(test)]
    fn open_topics(&self) -> usize {
        lock(&self.topics).len()
    }
}

impl State {
    /// The lease of `job` if it has not expired; forgets an expired one.
    fn live_lease(&mut self, job: Uuid, now: Instant) -> Option<&mut Lease> {
        if self.leases.get(&job).is_some_and(|lease| lease.expires <= now) {
            self.leases.remove(&job);
        }
        self.leases.get_mut(&job)
    }
}

#[async_trait]
impl Coordinator for MemoryCoordinator {
    async fn grant_lease(&self, assignment: Assignment, ttl: Duration) -> CoordResult<()> {
        let now = Instant::now();
        let mut state = self.state();
        // Leases of jobs nobody renews or releases any more would otherwise stay forever.
        state.leases.retain(|_, lease| lease.expires > now);
        if let Some(current) = state.leases.get(&assignment.job_id)
            && current.epoch > assignment.epoch
        {
            tracing::debug!(%assignment, held = current.epoch, "newer epoch holds the lease");
            return Ok(());
        }
        state.leases.insert(assignment.job_id, Lease { epoch: assignment.epoch, expires: now + ttl });
        Ok(())
    }

    async fn renew_lease(&self, assignment: Assignment, ttl: Duration) -> CoordResult<bool> {
        let now = Instant::now();
        let mut state = self.state();
        match state.live_lease(assignment.job_id, now) {
            Some(lease) if lease.epoch == assignment.epoch => {
                lease.expires = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn lease_held(&self, assignment: Assignment) -> CoordResult<bool> {
        let mut state = self.state();
        let lease = state.live_lease(assignment.job_id, Instant::now());
        Ok(lease.is_some_and(|lease| lease.epoch == assignment.epoch))
    }

    async fn release_lease(&self, assignment: Assignment) -> CoordResult<()> {
        let mut state = self.state();
        if state.leases.get(&assignment.job_id).is_some_and(|lease| lease.epoch == assignment.epoch) {
            state.leases.remove(&assignment.job_id);
        }
        Ok(())
    }

    async fn set_online(&self, runner: Uuid, replica: &str, ttl: Duration) -> CoordResult<()> {
        let presence = Presence { replica: replica.to_owned(), expires: Instant::now() + ttl };
        self.state().runners.insert(runner, presence);
        Ok(())
    }

    async fn set_offline(&self, runner: Uuid, replica: &str) -> CoordResult<()> {
        let mut state = self.state();
        if state.runners.get(&runner).is_some_and(|presence| presence.replica == replica) {
            state.runners.remove(&runner);
        }
        Ok(())
    }

    async fn online_runners(&self) -> CoordResult<HashSet<Uuid>> {
        let now = Instant::now();
        let mut state = self.state();
        state.runners.retain(|_, presence| presence.expires > now);
        Ok(state.runners.keys().copied().collect())
    }

    async fn publish(&self, topic: &Topic, payload: Bytes) -> CoordResult<()> {
        if let Some(sender) = lock(&self.topics).get(topic) {
            sender.send(&payload);
        }
        Ok(())
    }

    async fn subscribe(&self, topic: &Topic) -> CoordResult<BoxStream<'static, Bytes>> {
        let receiver = lock(&self.topics)
            .entry(topic.clone())
            .or_insert_with(|| Sender::new(Limits::of(topic), self.gauge.clone()))
            .subscribe();
        let topics = Arc::downgrade(&self.topics);
        let topic = topic.clone();
        let release = move || {
            let Some(topics) = topics.upgrade() else {
                return;
            };
            let mut topics = lock(&topics);
            // Another subscriber may have joined since this one was dropped: the count is
            // checked under the same lock `subscribe` takes.
            if topics.get(&topic).is_some_and(|sender| sender.receiver_count() == 0) {
                topics.remove(&topic);
            }
        };
        Ok(Subscription::new(receiver, release).boxed())
    }

    async fn generation(&self) -> CoordResult<String> {
        // The leases live and die with the process that holds them: they are never lost
        // while anyone could ask.
        Ok("memory".to_owned())
    }

    fn fanout_usage(&self) -> FanoutUsage {
        self.gauge.usage()
    }
}

/// Locks `mutex`, ignoring poisoning: every critical section leaves the maps consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn topics_are_dropped_with_their_last_subscriber() {
        let coord = MemoryCoordinator::new();
        let logs = Topic::JobLogs(Uuid::new_v4());
        let first = coord.subscribe(&logs).await.expect("subscribe");
        let second = coord.subscribe(&logs).await.expect("subscribe");
        let dispatch = coord.subscribe(&Topic::Dispatch).await.expect("subscribe");
        assert_eq!(coord.open_topics(), 2);

        drop(first);
        assert_eq!(coord.open_topics(), 2, "a subscriber is left");
        drop(second);
        assert_eq!(coord.open_topics(), 1);
        drop(dispatch);
        assert_eq!(coord.open_topics(), 0);

        coord.publish(&logs, Bytes::from_static(b"nobody listens")).await.expect("publish");
        assert_eq!(coord.open_topics(), 0, "publishing opens no channel");
    }

    #[tokio::test(start_paused = true)]
    async fn expired_leases_are_forgotten() {
        let coord = MemoryCoordinator::new();
        let lease = |job_id| Assignment { job_id, attempt: 1, epoch: 1 };
        let old = Uuid::new_v4();
        coord.grant_lease(lease(old), Duration::from_millis(100)).await.expect("grant");
        tokio::time::advance(Duration::from_millis(200)).await;
        coord.grant_lease(lease(Uuid::new_v4()), Duration::from_secs(10)).await.expect("grant");
        let state = coord.state();
        assert!(!state.leases.contains_key(&old));
        assert_eq!(state.leases.len(), 1);
    }
}
