//! The command line itself: help, version and usage errors.

use predicates::str::contains;

use crate::support::rivet;

#[test]
fn help_exits_0_and_lists_the_commands() {
    rivet().arg("--help").assert().code(0).stdout(contains("pipeline")).stdout(contains("init"));
}

#[test]
fn version_exits_0() {
    rivet().arg("--version").assert().code(0).stdout(contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn unknown_subcommand_exits_2() {
    rivet().arg("frobnicate").assert().code(2).stderr(contains("unrecognized subcommand 'frobnicate'"));
}

#[test]
fn no_subcommand_exits_2() {
    rivet().assert().code(2).stderr(contains("Usage:"));
}

#[test]
fn check_without_files_exits_2() {
    rivet().args(["pipeline", "check"]).assert().code(2).stderr(contains("<FILES>..."));
}

#[test]
fn unknown_output_format_exits_2() {
    rivet().args(["pipeline", "check", "--output", "yaml", "x.lua"]).assert().code(2).stderr(contains("yaml"));
}
