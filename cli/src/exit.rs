//! The exit codes of `rivet`, documented in one place.

/// Everything worked.
pub const OK: u8 = 0;
/// An unexpected failure: I/O, the network, a bug.
pub const FAILURE: u8 = 1;
/// The command line was wrong (clap's own code for usage errors).
pub const USAGE: u8 = 2;
/// A pipeline script is invalid.
pub const INVALID_PIPELINE: u8 = 3;
