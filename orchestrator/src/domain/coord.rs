//! The coordination contract: what replicas share besides the database.
//!
//! Redis implements it in distributed mode, memory in embedded mode (`coord::RedisCoordinator`,
//! `coord::MemoryCoordinator`); the same test suite runs against both.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use rivet_core::Assignment;
use uuid::Uuid;

/// Coordination failures.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// Redis could not be reached or answered with an error.
    #[error("coordination unavailable: {0}")]
    Unavailable(String),
}

/// Shorthand for coordination results.
pub type CoordResult<T> = Result<T, CoordError>;

/// A fan-out channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// New log lines of a job.
    JobLogs(Uuid),
    /// State changes of a job.
    JobEvents(Uuid),
    /// Commands for the replica holding a runner's stream (e.g. cancel a job).
    Runner(Uuid),
    /// A job was queued or a runner freed up: replicas with idle runners should dispatch.
    Dispatch,
}

impl Topic {
    /// The channel name, e.g. `rivet:job:<id>:logs`.
    pub fn channel(&self) -> String {
        match self {
            Topic::JobLogs(id) => format!("rivet:job:{id}:logs"),
            Topic::JobEvents(id) => format!("rivet:job:{id}:events"),
            Topic::Runner(id) => format!("rivet:runner:{id}"),
            Topic::Dispatch => "rivet:dispatch".to_owned(),
        }
    }
}

impl Topic {
    /// How many messages the topic buffers for each subscriber before that subscriber
    /// starts missing some (see also [`Topic::buffer_bytes`]). Log batches arrive in
    /// bursts (a follower that falls behind catches up from the database by sequence
    /// number); the other topics carry a few small signals. Queues grow only as messages
    /// wait, so an idle subscriber costs nothing.
    pub fn capacity(&self) -> usize {
        match self {
            Topic::JobLogs(_) => 1024,
            Topic::JobEvents(_) => 64,
            Topic::Runner(_) | Topic::Dispatch => 16,
        }
    }

    /// How many bytes of messages the topic buffers for each subscriber on a replica
    /// before that subscriber starts missing some: a stuck log follower costs a replica at
    /// most this much, whatever the job logs, and then reads the store instead. Log
    /// batches are at most `bounds::MAX_LOG_BATCH_BYTES` of text; the other topics carry
    /// small signals.
    pub fn buffer_bytes(&self) -> usize {
        match self {
            Topic::JobLogs(_) => FOLLOWER_BUFFER_BYTES,
            Topic::JobEvents(_) | Topic::Runner(_) | Topic::Dispatch => 64 * 1024,
        }
    }
}

/// The live log buffer of one follower on one replica, in bytes: see [`Topic::buffer_bytes`].
pub const FOLLOWER_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// What a replica's fan-out holds for its subscribers right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanoutUsage {
    /// Bytes of messages queued for local subscribers that have not read them yet.
    pub buffered_bytes: usize,
    /// How many times a subscriber's queue was dropped because it fell behind (since the
    /// coordinator started).
    pub lags: u64,
}

/// Leases, presence and fan-out shared by every replica.
#[async_trait]
pub trait Coordinator: Send + Sync + 'static {
    /// Grants the lease of `assignment` for `ttl`, replacing any older epoch's lease.
    async fn grant_lease(&self, assignment: Assignment, ttl: Duration) -> CoordResult<()>;
    /// Extends the lease if it is still held under this epoch; `false` when it expired or
    /// belongs to another epoch.
    async fn renew_lease(&self, assignment: Assignment, ttl: Duration) -> CoordResult<bool>;
    /// Whether the lease is held under this epoch.
    async fn lease_held(&self, assignment: Assignment) -> CoordResult<bool>;
    /// Drops the lease if it is held under this epoch.
    async fn release_lease(&self, assignment: Assignment) -> CoordResult<()>;

    /// Marks a runner online (connected to `replica`) for `ttl`; renewed by heartbeats.
    async fn set_online(&self, runner: Uuid, replica: &str, ttl: Duration) -> CoordResult<()>;
    /// Marks a runner offline, if `replica` still holds it.
    async fn set_offline(&self, runner: Uuid, replica: &str) -> CoordResult<()>;
    /// The runners online now.
    async fn online_runners(&self) -> CoordResult<HashSet<Uuid>>;

    /// Publishes `payload` to every subscriber of `topic` on every replica.
    async fn publish(&self, topic: &Topic, payload: Bytes) -> CoordResult<()>;
    /// Receives what is published to `topic` from now on. Delivery is at most once: a
    /// slow subscriber may miss messages, so subscribers must be able to catch up from
    /// the database (log followers do, by sequence number).
    async fn subscribe(&self, topic: &Topic) -> CoordResult<BoxStream<'static, Bytes>>;
    /// What this replica's subscriber queues hold now: each is bounded by its topic's
    /// [`Topic::capacity`] and [`Topic::buffer_bytes`].
    fn fanout_usage(&self) -> FanoutUsage;

    /// The generation of the coordinator's data: a value that stays the same as long as
    /// nothing it was given was lost, and changes when it was (a Redis restarted without
    /// persistence, flushed, or failed over to a replica without the key). Every replica
    /// sees the same generation. An error means the coordinator cannot be reached now.
    /// The lease sweeper compares generations to know when leases may have vanished
    /// without their runners having gone (see `domain::leases`).
    async fn generation(&self) -> CoordResult<String>;
}
