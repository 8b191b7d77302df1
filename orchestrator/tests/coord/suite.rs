//! The scenarios every coordinator must pass, written once against the trait.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use rivet_core::Assignment;
use rivet_orchestrator::domain::coord::{Coordinator, FOLLOWER_BUFFER_BYTES, Topic};
use uuid::Uuid;

use crate::support::next_message;

/// A TTL no test outlives.
const LONG: Duration = Duration::from_secs(30);
/// A TTL a test waits out.
const SHORT: Duration = Duration::from_millis(150);
/// Comfortably longer than [`SHORT`], even for a Redis on a busy machine.
const PAST_SHORT: Duration = Duration::from_millis(400);

/// How a scenario lets time pass: really (Redis expires keys on its own clock), or by
/// advancing tokio's paused clock (memory).
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    Real,
    Paused,
}

impl Clock {
    async fn pass(self, duration: Duration) {
        match self {
            Clock::Real => tokio::time::sleep(duration).await,
            Clock::Paused => tokio::time::advance(duration).await,
        }
    }
}

fn lease(job_id: Uuid, epoch: u64) -> Assignment {
    Assignment { job_id, attempt: 1, epoch }
}

async fn held(coord: &dyn Coordinator, assignment: Assignment) -> bool {
    coord.lease_held(assignment).await.expect("lease_held")
}

async fn renew(coord: &dyn Coordinator, assignment: Assignment, ttl: Duration) -> bool {
    coord.renew_lease(assignment, ttl).await.expect("renew_lease")
}

async fn grant(coord: &dyn Coordinator, assignment: Assignment, ttl: Duration) {
    coord.grant_lease(assignment, ttl).await.expect("grant_lease");
}

async fn release(coord: &dyn Coordinator, assignment: Assignment) {
    coord.release_lease(assignment).await.expect("release_lease");
}

async fn online(coord: &dyn Coordinator) -> HashSet<Uuid> {
    coord.online_runners().await.expect("online_runners")
}

async fn publish(coord: &dyn Coordinator, topic: &Topic, payload: impl Into<Bytes>) {
    coord.publish(topic, payload.into()).await.expect("publish");
}

pub async fn lease_grant_renew_release(coord: &dyn Coordinator, _clock: Clock) {
    let job = Uuid::new_v4();
    let current = lease(job, 1);
    grant(coord, current, LONG).await;
    assert!(held(coord, current).await);
    assert!(!held(coord, lease(job, 2)).await, "another epoch does not hold it");
    assert!(!held(coord, lease(Uuid::new_v4(), 1)).await, "another job has no lease");
    assert!(renew(coord, current, LONG).await);

    release(coord, lease(job, 2)).await;
    assert!(held(coord, current).await, "another epoch can't release it");
    release(coord, current).await;
    assert!(!held(coord, current).await);
    assert!(!renew(coord, current, LONG).await, "a released lease can't be renewed");
}

pub async fn lease_is_fenced_by_epoch(coord: &dyn Coordinator, _clock: Clock) {
    let job = Uuid::new_v4();
    let (old, new) = (lease(job, 1), lease(job, 2));
    grant(coord, old, LONG).await;
    grant(coord, new, LONG).await;
    assert!(!held(coord, old).await, "the newer epoch replaced the old one");
    assert!(!renew(coord, old, LONG).await, "renewing under an old epoch fails");
    assert!(held(coord, new).await, "a failed renewal leaves the lease alone");
    release(coord, old).await;
    assert!(held(coord, new).await, "releasing under an old epoch does nothing");
    assert!(renew(coord, new, LONG).await);
}

pub async fn older_epoch_does_not_steal_lease(coord: &dyn Coordinator, _clock: Clock) {
    // 9 < 10 although "9" > "10": epochs are compared as numbers, not as text.
    for (newer, older) in [(7, 6), (10, 9), (u64::MAX, u64::MAX - 1)] {
        let job = Uuid::new_v4();
        grant(coord, lease(job, newer), LONG).await;
        grant(coord, lease(job, older), LONG).await;
        assert!(held(coord, lease(job, newer)).await, "epoch {newer} lost to {older}");
        assert!(!held(coord, lease(job, older)).await);
        assert!(!renew(coord, lease(job, older), LONG).await);
    }
}

pub async fn lease_expires_after_ttl(coord: &dyn Coordinator, clock: Clock) {
    let job = Uuid::new_v4();
    let first = lease(job, 1);
    grant(coord, first, SHORT).await;
    assert!(held(coord, first).await);
    clock.pass(PAST_SHORT).await;
    assert!(!held(coord, first).await, "the lease outlived its ttl");
    assert!(!renew(coord, first, LONG).await, "an expired lease can't be renewed");

    // Any replica may hand the job out again.
    let second = lease(job, 2);
    grant(coord, second, LONG).await;
    assert!(held(coord, second).await);
}

pub async fn renewal_extends_lease(coord: &dyn Coordinator, clock: Clock) {
    let current = lease(Uuid::new_v4(), 3);
    grant(coord, current, Duration::from_millis(300)).await;
    clock.pass(Duration::from_millis(100)).await;
    assert!(renew(coord, current, Duration::from_secs(5)).await);
    clock.pass(PAST_SHORT).await;
    assert!(held(coord, current).await, "the renewal did not extend the lease");
}

pub async fn presence_tracks_online_runners(coord: &dyn Coordinator, _clock: Clock) {
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    assert!(online(coord).await.is_empty());
    coord.set_online(first, "replica-a", LONG).await.expect("set_online");
    coord.set_online(second, "replica-b", LONG).await.expect("set_online");
    assert_eq!(online(coord).await, HashSet::from([first, second]));

    coord.set_offline(first, "replica-b").await.expect("set_offline");
    assert_eq!(
        online(coord).await,
        HashSet::from([first, second]),
        "a replica that does not hold the runner can't mark it offline"
    );
    coord.set_offline(first, "replica-a").await.expect("set_offline");
    assert_eq!(online(coord).await, HashSet::from([second]));
    coord.set_offline(second, "replica-b").await.expect("set_offline");
    assert!(online(coord).await.is_empty());
}

pub async fn presence_expires_unless_renewed(coord: &dyn Coordinator, clock: Clock) {
    let (silent, beating) = (Uuid::new_v4(), Uuid::new_v4());
    coord.set_online(silent, "replica-a", SHORT).await.expect("set_online");
    coord.set_online(beating, "replica-a", SHORT).await.expect("set_online");
    clock.pass(Duration::from_millis(50)).await;
    coord.set_online(beating, "replica-a", Duration::from_secs(5)).await.expect("heartbeat");
    clock.pass(PAST_SHORT).await;
    assert_eq!(online(coord).await, HashSet::from([beating]));
}

pub async fn runner_that_moved_stays_online(coord: &dyn Coordinator, _clock: Clock) {
    let runner = Uuid::new_v4();
    coord.set_online(runner, "replica-a", LONG).await.expect("set_online");
    // The runner reconnects through another replica before the first one notices.
    coord.set_online(runner, "replica-b", LONG).await.expect("set_online");
    coord.set_offline(runner, "replica-a").await.expect("set_offline");
    assert_eq!(online(coord).await, HashSet::from([runner]));
    coord.set_offline(runner, "replica-b").await.expect("set_offline");
    assert!(online(coord).await.is_empty());
}

pub async fn online_runners_lists_many(coord: &dyn Coordinator, _clock: Clock) {
    let runners: HashSet<Uuid> = (0..1200).map(|_| Uuid::new_v4()).collect();
    for runner in &runners {
        coord.set_online(*runner, "replica-a", LONG).await.expect("set_online");
    }
    assert_eq!(online(coord).await, runners);
}

pub async fn fanout_delivers_in_order(coord: &dyn Coordinator, _clock: Clock) {
    let topic = Topic::JobLogs(Uuid::new_v4());
    let mut messages = coord.subscribe(&topic).await.expect("subscribe");
    for i in 0..1000 {
        publish(coord, &topic, i.to_string()).await;
    }
    for i in 0..1000 {
        assert_eq!(next_message(&mut messages).await, i.to_string());
    }
}

pub async fn fanout_topics_are_separate(coord: &dyn Coordinator, _clock: Clock) {
    let job = Uuid::new_v4();
    let topics = [
        Topic::JobLogs(job),
        Topic::JobEvents(job),
        Topic::Runner(job),
        Topic::Dispatch,
        Topic::JobLogs(Uuid::new_v4()),
    ];
    let mut subscriptions = Vec::new();
    for topic in &topics {
        subscriptions.push(coord.subscribe(topic).await.expect("subscribe"));
    }
    for (i, topic) in topics.iter().enumerate() {
        publish(coord, topic, format!("for {i}")).await;
    }
    for topic in &topics {
        publish(coord, topic, "end").await;
    }
    // Had a message leaked, it would come before "end".
    for (i, messages) in subscriptions.iter_mut().enumerate() {
        assert_eq!(next_message(messages).await, format!("for {i}"));
        assert_eq!(next_message(messages).await, "end");
    }
}

pub async fn fanout_reaches_every_subscriber(coord: &dyn Coordinator, _clock: Clock) {
    let topic = Topic::JobEvents(Uuid::new_v4());
    let mut first = coord.subscribe(&topic).await.expect("subscribe");
    let mut second = coord.subscribe(&topic).await.expect("subscribe");
    publish(coord, &topic, "a").await;
    publish(coord, &topic, "b").await;
    for messages in [&mut first, &mut second] {
        assert_eq!(next_message(messages).await, "a");
        assert_eq!(next_message(messages).await, "b");
    }
}

pub async fn fanout_survives_dropped_subscribers(coord: &dyn Coordinator, _clock: Clock) {
    let topic = Topic::Runner(Uuid::new_v4());
    let first = coord.subscribe(&topic).await.expect("subscribe");
    let mut second = coord.subscribe(&topic).await.expect("subscribe");
    drop(first);
    publish(coord, &topic, "after a drop").await;
    assert_eq!(next_message(&mut second).await, "after a drop");
    drop(second);

    // The last subscriber leaving and a new one coming must not race each other.
    for round in 0..50 {
        let mut messages = coord.subscribe(&topic).await.expect("subscribe");
        publish(coord, &topic, format!("round {round}")).await;
        assert_eq!(next_message(&mut messages).await, format!("round {round}"));
    }
}

pub async fn slow_subscriber_misses_messages_without_blocking_others(coord: &dyn Coordinator, _clock: Clock) {
    let topic = Topic::JobLogs(Uuid::new_v4());
    let mut slow = coord.subscribe(&topic).await.expect("subscribe");
    let mut fast = coord.subscribe(&topic).await.expect("subscribe");
    let total = 3000;
    for i in 0..total {
        publish(coord, &topic, i.to_string()).await;
        assert_eq!(next_message(&mut fast).await, i.to_string());
    }
    // The slow one lost the oldest messages and resumes with the ones still buffered.
    let first: u32 = std::str::from_utf8(&next_message(&mut slow).await).expect("utf-8").parse().expect("a number");
    assert!(first > 0, "the slow subscriber missed nothing");
    for i in first + 1..total {
        assert_eq!(next_message(&mut slow).await, i.to_string());
    }
}

pub async fn a_slow_subscriber_holds_a_bounded_number_of_bytes(coord: &dyn Coordinator, _clock: Clock) {
    let topic = Topic::JobLogs(Uuid::new_v4());
    let mut slow = coord.subscribe(&topic).await.expect("subscribe");
    let mut fast = coord.subscribe(&topic).await.expect("subscribe");
    let size = 256 * 1024;
    let total = 4 * FOLLOWER_BUFFER_BYTES / size;
    let lags_before = coord.fanout_usage().lags;
    let mut most = 0;
    for i in 0..total {
        let mut payload = format!("{i:08}").into_bytes();
        payload.resize(size, b' ');
        publish(coord, &topic, payload).await;
        assert_eq!(next_message(&mut fast).await[..8], *format!("{i:08}").as_bytes());
        most = most.max(coord.fanout_usage().buffered_bytes);
    }
    // Four times its buffer went by: the slow one was dropped, and never held more than it.
    assert!(most <= FOLLOWER_BUFFER_BYTES + size, "{most} bytes buffered");
    assert!(coord.fanout_usage().lags > lags_before);
    // What it still has is the newest messages, in order, up to the last one.
    let mut previous: Option<usize> = None;
    loop {
        let message = next_message(&mut slow).await;
        let index: usize = std::str::from_utf8(&message[..8]).expect("utf-8").parse().expect("a number");
        assert!(previous.is_none_or(|previous| index == previous + 1), "{previous:?} then {index}");
        previous = Some(index);
        if index == total - 1 {
            break;
        }
    }
    assert!(previous.is_some_and(|last| last + 1 == total));
    drop(slow);
    drop(fast);
    assert_eq!(coord.fanout_usage().buffered_bytes, 0, "nothing is left buffered for dropped subscribers");
}

pub async fn publishing_to_an_unfollowed_topic_is_fine(coord: &dyn Coordinator, _clock: Clock) {
    publish(coord, &Topic::Dispatch, "nobody listens").await;
    let mut messages = coord.subscribe(&Topic::Dispatch).await.expect("subscribe");
    publish(coord, &Topic::Dispatch, "now someone does").await;
    assert_eq!(next_message(&mut messages).await, "now someone does");
}

/// Expands to one test per scenario of the suite, each running on a fresh coordinator.
#[macro_export]
macro_rules! suite_tests {
    (#[$runtime:meta] $setup:expr, $clock:expr) => {
        $crate::suite_tests!(@each #[$runtime] $setup, $clock;
            lease_grant_renew_release,
            lease_is_fenced_by_epoch,
            older_epoch_does_not_steal_lease,
            lease_expires_after_ttl,
            renewal_extends_lease,
            presence_tracks_online_runners,
            presence_expires_unless_renewed,
            runner_that_moved_stays_online,
            online_runners_lists_many,
            fanout_delivers_in_order,
            fanout_topics_are_separate,
            fanout_reaches_every_subscriber,
            fanout_survives_dropped_subscribers,
            slow_subscriber_misses_messages_without_blocking_others,
            a_slow_subscriber_holds_a_bounded_number_of_bytes,
            publishing_to_an_unfollowed_topic_is_fine,
        );
    };
    (@each #[$runtime:meta] $setup:expr, $clock:expr; $($name:ident,)*) => {
        $(
            #[$runtime]
            async fn $name() {
                let coord = $setup;
                $crate::suite::$name(&coord, $clock).await;
            }
        )*
    };
}
