//! Coordination: Redis for distributed mode, memory for embedded mode.
//!
//! Both implement [`Coordinator`](crate::domain::coord::Coordinator) and are checked by the
//! same test suite (`tests/coord`). Fan-out has the same shape in both: one in-process
//! broadcast channel per topic that has subscribers, dropped when its last subscriber goes.

mod memory;
mod redis;
mod subscription;

pub use memory::MemoryCoordinator;
pub use redis::RedisCoordinator;

/// How many messages a topic buffers for its slowest subscriber before that subscriber
/// starts missing some. Log batches arrive in bursts; a follower that falls further behind
/// catches up from the database by sequence number.
const TOPIC_CAPACITY: usize = 1024;
