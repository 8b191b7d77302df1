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
    /// How many messages the topic buffers for its slowest subscriber before that
    /// subscriber starts missing some. Log batches arrive in bursts (a follower that falls
    /// behind catches up from the database by sequence number); the other topics carry a
    /// few small signals, and one is open per connected runner, so they stay small
    /// (a 1,024-slot channel costs ~56 KiB).
    pub fn capacity(&self) -> usize {
        match self {
            Topic::JobLogs(_) => 1024,
            Topic::JobEvents(_) => 64,
            Topic::Runner(_) | Topic::Dispatch => 16,
        }
    }
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
}
