//! Coordination: Redis for distributed mode, memory for embedded mode.
//!
//! Both implement [`Coordinator`](crate::domain::coord::Coordinator) and are checked by the
//! same test suite (`tests/coord`). Fan-out has the same shape in both: one in-process
//! channel per topic that has subscribers (`channel`: a bounded queue per subscriber),
//! dropped when its last subscriber goes.

mod channel;
mod memory;
mod redis;
mod subscription;

pub use memory::MemoryCoordinator;
pub use redis::RedisCoordinator;
