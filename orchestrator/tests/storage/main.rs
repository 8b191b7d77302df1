//! Storage tests: the `Store` contract, written once and run against PostgreSQL and SQLite.
//!
//! Each test function takes a fresh store; `backends!` turns it into a `postgres::NAME`
//! and a `sqlite::NAME` test. PostgreSQL must be reachable (`RIVET_TEST_DATABASE_URL`,
//! started by `scripts/test-services.sh`): an unreachable server fails the tests.

// A failed unwrap is a failed test, with the error in its message.
#![allow(clippy::unwrap_used)]

mod support;

mod claim;
mod connect;
mod identity;
mod jobs;
mod lifecycle;
mod logs;
mod pipelines;
mod runners;
