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
mod protocol;
// Shared with the runner's fault tests, which use all of it.
#[allow(dead_code)]
#[path = "../support/proxy.rs"]
mod proxy;
mod replicas;
mod resilience;
mod roles;
mod schedules;
mod secrets;
mod statuses;
mod support;
mod trust;
mod webhooks;
