//! The orchestrator over real gRPC, on PostgreSQL + Redis and on SQLite + memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dispatch;
mod identity;
mod jobs;
mod pipelines;
mod replicas;
mod resilience;
mod support;
