//! End-to-end tests of the `rivet` binary: each runs the built executable as a user would
//! and checks its exit code and what it prints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod check;
mod init;
mod support;
mod usage;
