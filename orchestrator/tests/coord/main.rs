//! The coordination test suite, run against both coordinators: memory (with paused time)
//! and Redis (at `RIVET_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`, each test in a
//! namespace of its own). A Redis that can't be reached fails the Redis tests.

mod memory;
mod redis;
mod suite;
mod support;
