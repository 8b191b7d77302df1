//! The worker: a process that evaluates one pipeline script after another, read from its
//! stdin and answered on its stdout, under rlimits it sets on itself before it reads
//! anything.
//!
//! Any Rivet binary becomes a worker when started with [`WORKER_ARG`] as its first
//! argument: its `main` calls [`run_if_requested`] before it parses its command line or
//! starts a runtime, so the worker stays one thread with nothing else in its address space.
//!
//! The rlimits do not trust the sandbox: `RLIMIT_AS` stops allocations that Lua's own
//! memory cap does not see (the process aborts), `RLIMIT_CPU` stops a computation that
//! runs on after its parent vanished (the kernel sends `SIGXCPU`), and no core file is
//! written for either. The pool's wall-clock kill comes first in every other case.

use std::ffi::{OsStr, OsString};
use std::io::{BufWriter, Write};
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::time::Duration;

use rivet_core::{LoadError, LoadedPipeline};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use rustix::time::{ClockId, clock_gettime};

use crate::frame::{self, MAX_REQUEST_BYTES, Request, Response};

/// The first argument that turns a Rivet binary into an evaluation worker. Hidden from
/// `--help`: only the pool passes it.
pub const WORKER_ARG: &str = "__evaluate-worker";

/// The exit code of a worker that was started wrongly or lost its pool mid-frame.
const WORKER_FAILURE: u8 = 70;

/// What a worker is told at start, as `key=value` arguments after [`WORKER_ARG`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSettings {
    /// The Lua heap cap, in bytes: the sandbox's own limit, reported as a diagnostic.
    pub memory: usize,
    /// The sandbox's time budget per evaluation.
    pub time: Duration,
    /// `RLIMIT_AS`, in bytes: the Lua heap plus the process's own needs.
    pub address_space: u64,
    /// CPU time allowed per evaluation before `RLIMIT_CPU` stops the process; rounded up
    /// to whole seconds, the kernel's granularity.
    pub cpu: Duration,
}

impl WorkerSettings {
    /// The arguments that carry these settings (after [`WORKER_ARG`]).
    pub fn to_args(&self) -> Vec<String> {
        vec![
            format!("memory={}", self.memory),
            format!("time_ms={}", self.time.as_millis()),
            format!("address_space={}", self.address_space),
            format!("cpu_ms={}", self.cpu.as_millis()),
        ]
    }

    /// Parses what [`WorkerSettings::to_args`] wrote; every key is required.
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<WorkerSettings, String> {
        let (mut memory, mut time, mut address_space, mut cpu) = (None, None, None, None);
        for arg in args {
            let arg = arg.into_string().map_err(|arg| format!("argument {arg:?} is not UTF-8"))?;
            let (key, value) = arg.split_once('=').ok_or_else(|| format!("argument `{arg}` is not key=value"))?;
            let number: u64 = value.parse().map_err(|_| format!("`{key}` must be a whole number, got `{value}`"))?;
            match key {
                "memory" => memory = Some(usize::try_from(number).map_err(|_| "`memory` is too large".to_owned())?),
                "time_ms" => time = Some(Duration::from_millis(number)),
                "address_space" => address_space = Some(number),
                "cpu_ms" => cpu = Some(Duration::from_millis(number)),
                other => return Err(format!("unknown setting `{other}`")),
            }
        }
        let missing = |key: &str| format!("missing setting `{key}`");
        Ok(WorkerSettings {
            memory: memory.ok_or_else(|| missing("memory"))?,
            time: time.ok_or_else(|| missing("time_ms"))?,
            address_space: address_space.ok_or_else(|| missing("address_space"))?,
            cpu: cpu.ok_or_else(|| missing("cpu_ms"))?,
        })
    }

    fn limits(&self) -> rivet_core::Limits {
        let mut limits = rivet_core::Limits::DEFINITION;
        limits.memory = self.memory;
        limits.time = self.time;
        limits
    }
}

/// Runs the worker when this process was started as one, and returns its exit code;
/// `None` otherwise. Call it first thing in `main`, before parsing arguments or starting
/// threads.
pub fn run_if_requested() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(OsStr::new(WORKER_ARG)) {
        return None;
    }
    Some(worker_main(args))
}

/// The worker's main loop, with the arguments after [`WORKER_ARG`]. Returns at the end of
/// stdin (its pool closed it), or with [`WORKER_FAILURE`] when it cannot go on.
pub fn worker_main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let settings = match WorkerSettings::parse(args) {
        Ok(settings) => settings,
        Err(message) => return fail(&format!("bad arguments: {message}")),
    };
    if let Err(err) = limit_self(&settings) {
        return fail(&format!("cannot set rlimits: {err}"));
    }
    let mut input = std::io::stdin().lock();
    let mut output = BufWriter::new(std::io::stdout().lock());
    loop {
        let request: Request = match frame::read_blocking(&mut input, MAX_REQUEST_BYTES) {
            Ok(Some(request)) => request,
            Ok(None) => return ExitCode::SUCCESS,
            Err(err) => return fail(&format!("cannot read a request: {err}")),
        };
        if let Err(err) = allow_cpu(settings.cpu) {
            return fail(&format!("cannot set RLIMIT_CPU: {err}"));
        }
        let response = evaluate(&request, settings.limits());
        if let Err(err) = frame::write_blocking(&mut output, &response) {
            return fail(&format!("cannot write a response: {err}"));
        }
        let _ = output.flush();
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("rivet evaluation worker: {message}");
    ExitCode::from(WORKER_FAILURE)
}

/// Evaluates one script. A panic is answered, not propagated: the pool retires the worker.
fn evaluate(request: &Request, limits: rivet_core::Limits) -> Response {
    let run = || rivet_core::load(&request.source, &request.file, limits).map(LoadedPipeline::into_definition);
    match std::panic::catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(definition)) => Response::Valid(definition),
        Ok(Err(LoadError::Invalid(diagnostics))) => Response::Invalid(diagnostics),
        Ok(Err(LoadError::Sandbox(message))) => Response::Sandbox(message),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            Response::Panicked(message)
        }
    }
}

/// The limits that hold for the worker's whole life: its address space, and no core file
/// when a limit kills it (a core of a 300 MiB process, per kill, would fill disks).
fn limit_self(settings: &WorkerSettings) -> rustix::io::Result<()> {
    lower(Resource::Core, 0)?;
    lower(Resource::As, settings.address_space)
}

/// Sets both the soft and the hard limit of `resource` to `value`, unless they are lower.
fn lower(resource: Resource, value: u64) -> rustix::io::Result<()> {
    let current = getrlimit(resource);
    let capped = |limit: Option<u64>| Some(limit.map_or(value, |limit| limit.min(value)));
    setrlimit(resource, Rlimit { current: capped(current.current), maximum: capped(current.maximum) })
}

/// Raises the soft `RLIMIT_CPU` to the CPU time used so far plus `allowance`: CPU time
/// counts over the worker's whole life, and each evaluation gets the same allowance. The
/// hard limit stays where it is so the next evaluation can raise the soft one again.
fn allow_cpu(allowance: Duration) -> rustix::io::Result<()> {
    let used = clock_gettime(ClockId::ProcessCPUTime);
    let used_secs = u64::try_from(used.tv_sec).unwrap_or(0) + 1;
    let allowance_secs = allowance.as_secs() + u64::from(allowance.subsec_nanos() > 0);
    let current = getrlimit(Resource::Cpu);
    let wanted = used_secs + allowance_secs;
    let soft = current.maximum.map_or(wanted, |hard| hard.min(wanted));
    setrlimit(Resource::Cpu, Rlimit { current: Some(soft), maximum: current.maximum })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_arguments_and_bad_ones_are_named() {
        let settings = WorkerSettings {
            memory: 64 << 20,
            time: Duration::from_millis(2_000),
            address_space: 320 << 20,
            cpu: Duration::from_millis(3_000),
        };
        let args = settings.to_args().into_iter().map(OsString::from);
        assert_eq!(WorkerSettings::parse(args), Ok(settings));
        let err = WorkerSettings::parse([OsString::from("memory=12")]).expect_err("incomplete");
        assert_eq!(err, "missing setting `time_ms`");
        let err = WorkerSettings::parse([OsString::from("colour=3")]).expect_err("unknown");
        assert_eq!(err, "unknown setting `colour`");
    }
}
