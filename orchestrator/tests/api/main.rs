//! The orchestrator over real gRPC, on PostgreSQL + Redis and on SQLite + memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bounds;
mod deploy;
mod dispatch;
mod evaluation;
mod identity;
mod jobs;
mod pipelines;
mod plugins;
mod replicas;
mod resilience;
mod roles;
mod support;
mod trust;
