//! The suite against Redis, plus what only a shared, fallible Redis can show: replicas
//! seeing each other, namespaces, unsubscribing, and surviving a lost connection.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use deadpool_redis::redis;
use futures_util::StreamExt;
use rivet_core::Assignment;
use rivet_orchestrator::coord::RedisCoordinator;
use rivet_orchestrator::domain::coord::{CoordError, Coordinator, Topic};
use uuid::Uuid;

use crate::suite::Clock;
use crate::support::{Proxy, connect, connect_to, namespace, next_message, redis_url, within};

crate::suite_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    connect(&namespace()).await,
    Clock::Real
);

const TTL: Duration = Duration::from_secs(30);

#[tokio::test]
async fn unreachable_redis_is_unavailable() {
    // Nothing listens on port 1.
    let result = RedisCoordinator::connect("redis://127.0.0.1:1", &namespace()).await;
    let Err(CoordError::Unavailable(message)) = result else {
        panic!("connecting to nothing should fail");
    };
    assert!(message.contains("failed to"), "unhelpful error: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_leases_presence_and_messages() {
    let namespace = namespace();
    let (a, b) = (connect(&namespace).await, connect(&namespace).await);

    let job = Uuid::new_v4();
    let first = Assignment { job_id: job, attempt: 1, epoch: 1 };
    a.grant_lease(first, TTL).await.expect("grant");
    assert!(b.lease_held(first).await.expect("held"));
    let second = Assignment { attempt: 2, epoch: 2, ..first };
    b.grant_lease(second, TTL).await.expect("grant");
    assert!(!a.renew_lease(first, TTL).await.expect("renew"), "replica a was fenced off");

    let runner = Uuid::new_v4();
    a.set_online(runner, "a", TTL).await.expect("set_online");
    assert_eq!(b.online_runners().await.expect("online"), HashSet::from([runner]));

    let topic = Topic::JobLogs(job);
    let mut on_a = a.subscribe(&topic).await.expect("subscribe");
    let mut on_b = b.subscribe(&topic).await.expect("subscribe");
    a.publish(&topic, Bytes::from("from a")).await.expect("publish");
    b.publish(&topic, Bytes::from("from b")).await.expect("publish");
    for messages in [&mut on_a, &mut on_b] {
        assert_eq!(next_message(messages).await, "from a");
        assert_eq!(next_message(messages).await, "from b");
    }
}

#[tokio::test]
async fn namespaces_are_isolated() {
    let (a, b) = (connect(&namespace()).await, connect(&namespace()).await);
    let assignment = Assignment { job_id: Uuid::new_v4(), attempt: 1, epoch: 1 };
    a.grant_lease(assignment, TTL).await.expect("grant");
    assert!(!b.lease_held(assignment).await.expect("held"));
    a.set_online(Uuid::new_v4(), "a", TTL).await.expect("set_online");
    assert!(b.online_runners().await.expect("online").is_empty());

    let mut on_b = b.subscribe(&Topic::Dispatch).await.expect("subscribe");
    a.publish(&Topic::Dispatch, Bytes::from("for a")).await.expect("publish");
    b.publish(&Topic::Dispatch, Bytes::from("for b")).await.expect("publish");
    assert_eq!(next_message(&mut on_b).await, "for b");
}

#[tokio::test]
async fn unused_channels_are_unsubscribed() {
    let namespace = namespace();
    let coord = connect(&namespace).await;
    let job = Uuid::new_v4();
    let channel = format!("{namespace}:job:{job}:logs");
    let client = redis::Client::open(redis_url()).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect to redis");
    let subscribers = |conn: &mut redis::aio::MultiplexedConnection, channel: String| {
        let mut conn = conn.clone();
        async move {
            let (_, count): (String, u32) =
                redis::cmd("PUBSUB").arg("NUMSUB").arg(&channel).query_async(&mut conn).await.expect("PUBSUB NUMSUB");
            count
        }
    };

    let first = coord.subscribe(&Topic::JobLogs(job)).await.expect("subscribe");
    let second = coord.subscribe(&Topic::JobLogs(job)).await.expect("subscribe");
    assert_eq!(subscribers(&mut conn, channel.clone()).await, 1, "one connection per coordinator");
    drop(first);
    // Releases are handled in order: once a channel released after `first` is unsubscribed,
    // `first`'s release has been handled too.
    let other = Uuid::new_v4();
    drop(coord.subscribe(&Topic::JobLogs(other)).await.expect("subscribe"));
    let other_channel = format!("{namespace}:job:{other}:logs");
    within(Duration::from_secs(5), "the unsubscribe of the other channel", async {
        while subscribers(&mut conn, other_channel.clone()).await != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(subscribers(&mut conn, channel.clone()).await, 1, "a subscriber is left");
    drop(second);
    within(Duration::from_secs(5), "the unsubscribe", async {
        while subscribers(&mut conn, channel.clone()).await != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn dropping_the_coordinator_ends_subscriptions() {
    let coord = connect(&namespace()).await;
    let mut messages = coord.subscribe(&Topic::Dispatch).await.expect("subscribe");
    drop(coord);
    let end = within(Duration::from_secs(5), "the end of the stream", messages.next()).await;
    assert_eq!(end, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_reconnects_after_connection_loss() {
    let proxy = Proxy::start(&redis_url()).await;
    let namespace = namespace();
    let coord = connect_to(&proxy.url, &namespace).await;
    let publisher = connect(&namespace).await;
    let topic = Topic::JobEvents(Uuid::new_v4());
    let mut messages = coord.subscribe(&topic).await.expect("subscribe");
    publisher.publish(&topic, Bytes::from("before")).await.expect("publish");
    assert_eq!(next_message(&mut messages).await, "before");

    // As if Redis restarted: every connection of `coord` drops.
    proxy.sever();

    // Messages published while the connection is down are lost (delivery is at most
    // once); once it is back, the same stream receives again.
    within(Duration::from_secs(15), "the pub/sub reconnection", async {
        loop {
            publisher.publish(&topic, Bytes::from("probe")).await.expect("publish");
            let probe = tokio::time::timeout(Duration::from_millis(200), messages.next()).await;
            if let Ok(message) = probe {
                assert_eq!(message.as_deref(), Some(&b"probe"[..]));
                break;
            }
        }
    })
    .await;
    publisher.publish(&topic, Bytes::from("after")).await.expect("publish");
    loop {
        let message = next_message(&mut messages).await;
        if message != "probe" {
            assert_eq!(message, "after");
            break;
        }
    }

    // New subscriptions and pooled commands work through the new connections too.
    let other = Topic::JobLogs(Uuid::new_v4());
    let mut fresh = coord.subscribe(&other).await.expect("subscribe after reconnecting");
    publisher.publish(&other, Bytes::from("fresh")).await.expect("publish");
    assert_eq!(next_message(&mut fresh).await, "fresh");
    let assignment = Assignment { job_id: Uuid::new_v4(), attempt: 1, epoch: 1 };
    coord.grant_lease(assignment, TTL).await.expect("grant after reconnecting");
    assert!(publisher.lease_held(assignment).await.expect("held"));
}

/// Every replica sees one data generation, which changes when Redis loses the namespace's
/// data (here: its generation key is deleted, as a flush or an empty restart would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_lost_its_data_has_a_new_generation() {
    let namespace = namespace();
    let (a, b) = (connect(&namespace).await, connect(&namespace).await);
    let first = a.generation().await.expect("generation");
    assert_eq!(b.generation().await.expect("generation"), first, "replicas share the generation");
    assert_eq!(a.generation().await.expect("generation"), first, "the generation is stable");

    let client = redis::Client::open(redis_url()).expect("redis client");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis connection");
    redis::cmd("DEL").arg(format!("{namespace}:generation")).query_async::<()>(&mut conn).await.expect("DEL");

    let second = b.generation().await.expect("generation");
    assert_ne!(second, first, "a lost generation is replaced by a new one");
    assert_eq!(a.generation().await.expect("generation"), second, "and every replica sees the new one");
}
