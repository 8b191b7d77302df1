//! The orchestrator: gRPC services, storage, dispatch, leases and log fan-out.
//!
//! Read top-down: `api` (tonic handlers) → `domain` (dispatch, leases, the job state
//! machine; the `Store` and `Coordinator` contracts) → `storage` (sea-orm, PostgreSQL and
//! SQLite) and `coord` (Redis and memory). `convert` is the one place that knows both the
//! wire types and the domain types; `server` assembles the parts.

pub mod api;
pub mod config;
pub mod convert;
pub mod coord;
pub mod domain;
pub mod migration;
pub mod server;
pub mod storage;
/// Test and bench support, behind the `testing` feature: never in a shipped orchestrator.
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhooks;
