//! `rivet-evaluate-worker`: nothing but an evaluation worker. The `rivet`,
//! `rivet-orchestrator` and `rivet-runner` binaries serve as workers too; this one exists
//! for this crate's tests and bench, and for deployments that confine workers separately.

use std::process::ExitCode;

fn main() -> ExitCode {
    match rivet_evaluator::run_if_requested() {
        Some(code) => code,
        None => {
            eprintln!(
                "rivet-evaluate-worker is started by Rivet's evaluation pool with `{}`",
                rivet_evaluator::WORKER_ARG
            );
            ExitCode::from(2)
        }
    }
}
