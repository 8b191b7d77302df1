//! End-to-end tests of the `rivet` binary: each runs the built executable as a user would
//! and checks its exit code and what it prints. `server` and `prompt` run against a real
//! `rivet dev` (orchestrator, runner and podman); `run` runs pipelines embedded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod check;
mod client;
mod init;
mod plugins;
mod prompt;
mod run;
mod schedules;
mod secrets;
mod server;
mod support;
mod tokens;
mod trace;
mod triggers;
mod usage;
