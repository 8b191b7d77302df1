//! The backstop behind the Lua sandbox: pipeline scripts evaluated at creation time run in
//! worker processes that can be killed from outside.
//!
//! The sandbox in `rivet-core` bounds a script's memory and time, also inside the C
//! functions it knows about. This crate does not trust that: the orchestrator and the CLI
//! evaluate through a [`Pool`] of worker processes, each under `RLIMIT_AS` and
//! `RLIMIT_CPU`, killed when it has not answered by the time budget plus a grace. A script
//! stuck in a C function nobody thought of costs one worker for that long, never a thread
//! of the server, and the caller gets an error that names the limit.
//!
//! A binary serves as a worker when its `main` starts with:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     if let Some(code) = rivet_evaluator::run_if_requested() {
//!         return code;
//!     }
//!     // ... the program itself
//!     std::process::ExitCode::SUCCESS
//! }
//! ```

mod error;
mod frame;
mod pool;
mod worker;

pub use error::Error;
pub use pool::{
    ADDRESS_SPACE_OVERHEAD, DEFAULT_QUEUE, DEFAULT_WORKERS, KILL_GRACE, MAX_EVALUATIONS_PER_WORKER, MAX_SOURCE_BYTES,
    Pool, PoolConfig,
};
pub use worker::{WORKER_ARG, WorkerSettings, run_if_requested, worker_main};
