//! The orchestrator: gRPC services, storage, dispatch, leases and log fan-out.
//!
//! Read top-down: `api` (tonic handlers) → `domain` (dispatch, leases, the job state
//! machine; the `Store` and `Coordinator` contracts) → `storage` (sea-orm, PostgreSQL and
//! SQLite) and `coord` (Redis and memory).

pub mod coord;
pub mod domain;
pub mod storage;
