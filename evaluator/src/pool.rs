//! The pool: a bounded set of worker processes that evaluate pipeline scripts, each
//! killed from outside when it overruns.
//!
//! At most `workers` evaluations run at once, each in its own process; at most `queue`
//! more wait for one (first come, first served), and any beyond that are refused at once
//! with [`Error::QueueFull`]. A worker is reused for the next evaluation, so one costs two
//! pipe writes and a JSON round trip, not a process start. A worker that does not answer
//! within the time budget plus [`KILL_GRACE`] is killed with `SIGKILL` and replaced by the
//! next request; so is one that dies, answers too much, or panicked. A caller that gives up
//! (its future is dropped) kills the worker it was using, so nothing runs on unobserved.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rivet_core::text::{MAX_MESSAGE_BYTES, truncate_owned};
use rivet_core::{Limits, LoadError, PipelineDefinition};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;
use crate::frame::{self, FrameError, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, Request, Response};
use crate::worker::{WORKER_ARG, WorkerSettings};

/// How many workers evaluate at once by default: each may take one CPU for a whole time
/// budget, so this is the most CPU that hostile scripts can take from the server.
pub const DEFAULT_WORKERS: usize = 2;

/// How many evaluations may wait for a worker by default.
pub const DEFAULT_QUEUE: usize = 32;

/// How long after the time budget a silent worker is killed. The sandbox's own deadline
/// ends ordinary scripts on time, with a precise error; this is for those it cannot reach.
pub const KILL_GRACE: Duration = Duration::from_secs(1);

/// What a worker process needs besides the Lua heap: the binary's mappings, the
/// allocator's arenas, stacks, and the copies of the source and the answer.
pub const ADDRESS_SPACE_OVERHEAD: u64 = 256 * 1024 * 1024;

/// Evaluations a worker serves before it is replaced, so that a heap fragmented by
/// hostile scripts does not live forever.
pub const MAX_EVALUATIONS_PER_WORKER: u32 = 1_000;

/// The largest pipeline source a worker is sent: a request escapes every byte into at
/// most six and must stay within [`MAX_REQUEST_BYTES`].
pub const MAX_SOURCE_BYTES: usize = (MAX_REQUEST_BYTES - 256) / 6;

/// How much of a dead worker's stderr is read to tell why it died.
const STDERR_CAP: u64 = 4 * 1024;

/// How long a worker that closed its stdout gets to exit before it is killed.
const EXIT_WAIT: Duration = Duration::from_secs(1);

/// How a pool is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// The program started as a worker with [`WORKER_ARG`]; any Rivet binary will do.
    pub program: PathBuf,
    /// How many evaluations run at once, each in its own process.
    pub workers: usize,
    /// How many evaluations may wait for a worker before more are refused.
    pub queue: usize,
    /// The sandbox's limits for one evaluation (Lua heap and time budget).
    pub limits: Limits,
    /// A worker's `RLIMIT_AS`, in bytes.
    pub address_space: u64,
    /// How long a worker may take to answer before it is killed.
    pub kill_after: Duration,
    /// The CPU time a worker may use per evaluation before the kernel stops it
    /// (`RLIMIT_CPU`, whole seconds). Past the wall-clock kill by default: it only acts
    /// when the pool is not there to kill.
    pub cpu_limit: Duration,
}

impl PoolConfig {
    /// A pool of `program` workers with the sandbox's `limits`, the default sizes, and the
    /// derived backstops: `RLIMIT_AS` at the Lua heap plus [`ADDRESS_SPACE_OVERHEAD`], and
    /// the kill at the time budget plus [`KILL_GRACE`].
    pub fn new(program: PathBuf, limits: Limits) -> PoolConfig {
        PoolConfig {
            program,
            workers: DEFAULT_WORKERS,
            queue: DEFAULT_QUEUE,
            limits,
            address_space: limits.memory as u64 + ADDRESS_SPACE_OVERHEAD,
            kill_after: limits.time + KILL_GRACE,
            cpu_limit: limits.time + 2 * KILL_GRACE,
        }
    }

    /// A pool whose workers are this very program (its `main` must call
    /// [`crate::run_if_requested`]), with the definition limits.
    pub fn current_exe() -> std::io::Result<PoolConfig> {
        Ok(PoolConfig::new(std::env::current_exe()?, Limits::DEFINITION))
    }

    fn settings(&self) -> WorkerSettings {
        WorkerSettings {
            memory: self.limits.memory,
            time: self.limits.time,
            address_space: self.address_space,
            cpu: self.cpu_limit,
        }
    }
}

/// Evaluates pipeline scripts in worker processes. Cheap to clone; the workers die with
/// the last clone.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: PoolConfig,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    idle: Mutex<Vec<Worker>>,
}

impl Pool {
    /// A pool; workers start on first use.
    pub fn new(config: PoolConfig) -> Pool {
        let workers = config.workers.max(1);
        Pool {
            inner: Arc::new(Inner {
                config,
                slots: Arc::new(Semaphore::new(workers)),
                waiting: AtomicUsize::new(0),
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// How many evaluations are running now.
    pub fn running(&self) -> usize {
        self.inner.config.workers.max(1) - self.inner.slots.available_permits()
    }

    /// How many evaluations are waiting for a worker now.
    pub fn queued(&self) -> usize {
        self.inner.waiting.load(Ordering::Acquire)
    }

    /// Evaluates `source` (named `file` in diagnostics) in a worker: the outer error is
    /// the pool's (a limit, a full queue, a worker that failed), the inner the script's.
    pub async fn check(&self, source: String, file: String) -> Result<Result<PipelineDefinition, LoadError>, Error> {
        // JSON escapes a byte into at most 6; a request the worker would refuse as too
        // large must be refused here, as the script's limit, not found later as a crash.
        if (source.len() + file.len()).saturating_mul(6) + 256 > MAX_REQUEST_BYTES {
            return Err(Error::SourceTooLarge { size: source.len(), limit: MAX_SOURCE_BYTES });
        }
        let _slot = self.admit().await?;
        let mut worker = self.worker()?;
        let request = Request { source, file };
        let response = match worker.exchange(&request, self.inner.config.kill_after).await {
            Ok(response) => response,
            Err(failure) => return Err(worker.diagnose(failure, &self.inner.config).await),
        };
        worker.evaluations += 1;
        let reusable = worker.evaluations < MAX_EVALUATIONS_PER_WORKER && !matches!(response, Response::Panicked(_));
        self.release(worker, reusable);
        let bounded = |message: String| truncate_owned(message, MAX_MESSAGE_BYTES);
        match response {
            Response::Valid(definition) => Ok(Ok(definition)),
            Response::Invalid(diagnostics) => Ok(Err(LoadError::Invalid(diagnostics))),
            Response::Sandbox(message) => Ok(Err(LoadError::Sandbox(bounded(message)))),
            Response::Panicked(message) => Err(Error::Crashed(bounded(format!("the evaluation panicked: {message}")))),
        }
    }

    /// [`Pool::check`], with a limit that stopped the script folded into the script's
    /// result as a diagnostic (it is the script's fault); the error is left for what is
    /// the server's (a full queue, a worker that could not start or failed).
    pub async fn evaluate(&self, source: String, file: String) -> Result<Result<PipelineDefinition, LoadError>, Error> {
        match self.check(source, file.clone()).await {
            Err(err) => match err.as_diagnostic(&file) {
                Some(diagnostic) => Ok(Err(LoadError::Invalid(vec![diagnostic]))),
                None => Err(err),
            },
            checked => checked,
        }
    }

    /// Waits for a free worker slot, or refuses when the queue is full.
    async fn admit(&self) -> Result<OwnedSemaphorePermit, Error> {
        if let Ok(slot) = self.inner.slots.clone().try_acquire_owned() {
            return Ok(slot);
        }
        let config = &self.inner.config;
        let queued = self.inner.waiting.fetch_add(1, Ordering::AcqRel);
        let _place = Waiting(&self.inner.waiting);
        if queued >= config.queue {
            return Err(Error::QueueFull { workers: config.workers.max(1), queue: config.queue });
        }
        self.inner.slots.clone().acquire_owned().await.map_err(|_| Error::Crashed("the pool is closed".to_owned()))
    }

    /// An idle worker that is still alive, or a new one.
    fn worker(&self) -> Result<Worker, Error> {
        loop {
            let idle = self.inner.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
            match idle {
                // A worker killed while idle (by an operator, the OOM killer) is replaced
                // here rather than failing the request it would have been given.
                Some(mut worker) => {
                    if matches!(worker.child.try_wait(), Ok(None)) {
                        return Ok(worker);
                    }
                }
                None => return Worker::spawn(&self.inner.config),
            }
        }
    }

    fn release(&self, worker: Worker, reusable: bool) {
        if reusable {
            self.inner.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(worker);
        }
        // Otherwise it is dropped: its stdin closes and `kill_on_drop` ends it.
    }
}

/// A place in the wait queue, given up when the wait ends or its caller leaves.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One worker process and its pipes.
#[derive(Debug)]
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    stderr: ChildStderr,
    evaluations: u32,
}

/// How an exchange with a worker went wrong.
#[derive(Debug)]
enum Failure {
    /// No answer in time.
    Timeout,
    /// A broken pipe, a malformed or an oversized answer.
    Frame(FrameError),
}

impl Worker {
    fn spawn(config: &PoolConfig) -> Result<Worker, Error> {
        let mut command = Command::new(&config.program);
        command
            .arg(WORKER_ARG)
            .args(config.settings().to_args())
            // The worker needs nothing from the environment, and should see none of the
            // server's settings (database URLs, tokens).
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C at the terminal is for the parent to handle.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| Error::Spawn { program: config.program.clone(), source })?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(Error::Crashed("the worker's pipes were not set up".to_owned()));
        };
        Ok(Worker { child, stdin, stdout, stderr, evaluations: 0 })
    }

    /// Sends one request and reads its answer, within `kill_after`.
    async fn exchange(&mut self, request: &Request, kill_after: Duration) -> Result<Response, Failure> {
        let exchange = async {
            frame::write(&mut self.stdin, request).await?;
            frame::read::<Response>(&mut self.stdout, MAX_RESPONSE_BYTES).await
        };
        match tokio::time::timeout(kill_after, exchange).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => Err(Failure::Frame(err)),
            Err(_) => Err(Failure::Timeout),
        }
    }

    /// Ends the worker and tells which limit, if any, stopped it.
    async fn diagnose(mut self, failure: Failure, config: &PoolConfig) -> Error {
        match failure {
            Failure::Timeout => {
                self.kill().await;
                Error::TimeBudget { budget: config.limits.time }
            }
            Failure::Frame(FrameError::TooLarge { .. }) => {
                self.kill().await;
                Error::ResponseTooLarge { limit: MAX_RESPONSE_BYTES }
            }
            Failure::Frame(err) => {
                let status = match tokio::time::timeout(EXIT_WAIT, self.child.wait()).await {
                    Ok(Ok(status)) => Some(status),
                    Ok(Err(_)) | Err(_) => {
                        self.kill().await;
                        None
                    }
                };
                let mut stderr = Vec::new();
                let mut capped = (&mut self.stderr).take(STDERR_CAP);
                let _ = tokio::time::timeout(EXIT_WAIT, capped.read_to_end(&mut stderr)).await;
                let stderr = String::from_utf8_lossy(&stderr).trim().to_owned();
                classify(status, &stderr, &err, config)
            }
        }
    }

    async fn kill(&mut self) {
        if let Err(err) = self.child.kill().await {
            tracing::warn!(error = %err, "cannot kill an evaluation worker");
        }
    }
}

/// Names the limit that ended a worker, from how it exited and what it said.
fn classify(status: Option<ExitStatus>, stderr: &str, err: &FrameError, config: &PoolConfig) -> Error {
    const SIGABRT: i32 = 6;
    const SIGXCPU: i32 = 24;
    let limit_error = match status.and_then(|status| status.signal()) {
        Some(SIGXCPU) => Some(Error::CpuLimit { limit: config.cpu_limit }),
        // Rust aborts when an allocation fails; under RLIMIT_AS that is the limit talking.
        Some(SIGABRT) if stderr.contains("memory allocation of") => {
            Some(Error::MemoryLimit { limit: config.address_space })
        }
        _ => None,
    };
    if let Some(error) = limit_error {
        return error;
    }
    let how = match status {
        Some(status) => describe(status),
        None => "it stopped answering".to_owned(),
    };
    tracing::warn!(%how, %stderr, error = %err, "an evaluation worker failed");
    let said = if stderr.is_empty() { String::new() } else { format!(": {}", rivet_core::text::truncate(stderr, 512)) };
    Error::Crashed(format!("{how} ({err}){said}"))
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("it exited with status {code}"),
        (None, Some(signal)) => format!("it was killed by signal {signal}"),
        (None, None) => format!("it ended: {status}"),
    }
}
