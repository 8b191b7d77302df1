//! End-to-end tests of the `rivet` binary: each runs the built executable as a user would
//! and checks its exit code and what it prints.

mod check;
mod init;
mod support;
mod usage;
