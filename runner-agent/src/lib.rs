//! The runner agent: runs pipeline stages in Podman containers and streams logs back.
//!
//! `agent` holds the one stream to the orchestrator and the outbox of unacknowledged
//! output; `job` is the contract with the executor (`executor`, with the Lua runtime
//! modules in `runtime`), which runs a job's stages.

pub mod agent;
pub mod config;
pub mod executor;
pub mod job;
pub mod metrics;
mod runtime;
