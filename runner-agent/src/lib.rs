//! The runner agent: runs pipeline stages in Podman containers and streams logs back.

pub mod config;
pub mod executor;
pub mod job;
mod runtime;
