//! The pool with real worker processes (`rivet-evaluate-worker`): answers like an
//! in-process evaluation, and each backstop (wall-clock kill, `RLIMIT_AS`, `RLIMIT_CPU`,
//! the bounded queue) ends a runaway evaluation with an error naming its limit, after
//! which the pool serves again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rivet_core::{Limits, LoadError};
use rivet_evaluator::{Error, Pool, PoolConfig};

/// Slack on every elapsed-time bound: the machine running the tests is shared and loaded.
const MARGIN: Duration = Duration::from_secs(3);

const VALID: &str =
    r#"return pipeline.define { name = "ok", stages = { { name = "build", script = function() end } } }"#;

/// A loop the sandbox would stop, given an hour's budget it never does in a test: from the
/// pool's side, a worker stuck for good.
const SPIN: &str = "while true do end";

fn config() -> PoolConfig {
    PoolConfig::new(PathBuf::from(env!("CARGO_BIN_EXE_rivet-evaluate-worker")), Limits::DEFINITION)
}

/// A pool whose sandbox never stops a script, so only the backstops can.
fn unbounded_sandbox(tweak: impl FnOnce(&mut PoolConfig)) -> Pool {
    let mut config = config();
    config.limits.time = Duration::from_secs(3_600);
    config.kill_after = Duration::from_secs(3_600);
    config.cpu_limit = Duration::from_secs(3_600);
    tweak(&mut config);
    Pool::new(config)
}

async fn check(pool: &Pool, source: &str) -> Result<Result<rivet_core::PipelineDefinition, LoadError>, Error> {
    pool.check(source.to_owned(), "test.lua".to_owned()).await
}

/// Waits for `condition`, polling: the pool has no events to wait on.
async fn until(condition: impl Fn() -> bool) {
    let deadline = Instant::now() + MARGIN;
    while !condition() {
        assert!(Instant::now() < deadline, "the condition never held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn serves(pool: &Pool) {
    let definition = check(pool, VALID).await.expect("the pool serves").expect("valid");
    assert_eq!(definition.name, "ok");
}

#[tokio::test]
async fn answers_match_an_in_process_evaluation() {
    let pool = Pool::new(config());
    let source =
        r#"return pipeline.define { name = "x", stages = { { name = "bad name!", script = function() end } } }"#;
    let expected = rivet_core::check(source, "test.lua").expect_err("invalid");
    let got = check(&pool, source).await.expect("the pool evaluates").expect_err("invalid");
    assert_eq!(got.diagnostics(), expected.diagnostics());
    assert!(!got.diagnostics().is_empty());
    // The same worker answers again, valid this time.
    serves(&pool).await;
    let err = check(&pool, "error('boom')").await.expect("the pool evaluates").expect_err("a script error");
    assert!(err.to_string().contains("boom"), "{err}");
}

#[tokio::test]
async fn a_stuck_worker_is_killed_at_the_wall_clock_limit_and_the_pool_goes_on() {
    let pool = unbounded_sandbox(|config| config.kill_after = Duration::from_secs(1));
    let started = Instant::now();
    let err = check(&pool, SPIN).await.expect_err("killed");
    let elapsed = started.elapsed();
    assert!(matches!(err, Error::TimeBudget { .. }), "{err:?}");
    // The message names the configured budget, which the kill follows by a grace.
    assert_eq!(err.to_string(), "pipeline evaluation exceeded its 3600 s time budget and was killed");
    assert!(elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(1) + MARGIN, "{elapsed:?}");
    serves(&pool).await;
}

#[tokio::test]
async fn the_sandbox_deadline_answers_before_the_kill() {
    // With the default derivation (kill at the budget plus a grace), an ordinary runaway
    // loop gets the sandbox's precise diagnostic, not the backstop's kill.
    let mut limits = Limits::DEFINITION;
    limits.time = Duration::from_millis(500);
    let pool = Pool::new(PoolConfig { limits, ..PoolConfig::new(config().program, limits) });
    let started = Instant::now();
    let err = check(&pool, SPIN).await.expect("the worker answers").expect_err("over budget");
    assert!(err.to_string().contains(rivet_core::sandbox::TIME_BUDGET_EXCEEDED), "{err}");
    assert!(started.elapsed() < Duration::from_millis(500) + MARGIN);
    serves(&pool).await;
}

#[tokio::test]
async fn a_worker_over_its_address_space_fails_with_a_memory_error() {
    // Lua's own cap is out of the way (4 GiB), so the allocations reach RLIMIT_AS.
    let pool = unbounded_sandbox(|config| {
        config.limits.memory = 4 << 30;
        config.limits.time = Duration::from_secs(20);
        config.kill_after = Duration::from_secs(20);
        config.address_space = 256 << 20;
    });
    // Long strings are not interned: each `string.rep` is a fresh 8 MiB allocation.
    let hog = r#"
        local chunks = {}
        for i = 1, 64 do chunks[i] = string.rep("x", 8 * 1024 * 1024) end
        return #chunks
    "#;
    let err = check(&pool, hog).await.expect_err("out of address space");
    // Neither the sandbox (4 GiB, 20 s) nor the kill (20 s) can have ended it.
    assert!(matches!(err, Error::MemoryLimit { limit } if limit == 256 << 20), "{err:?}");
    assert_eq!(err.to_string(), "pipeline evaluation exceeded its 256 MiB memory limit and was killed");
    serves(&pool).await;
}

#[tokio::test]
async fn a_worker_over_its_cpu_time_is_stopped_by_the_kernel() {
    // Neither the sandbox nor the wall clock intervene: RLIMIT_CPU (1 s, plus the second
    // already begun) is the only limit left.
    let pool = unbounded_sandbox(|config| config.cpu_limit = Duration::from_secs(1));
    let started = Instant::now();
    let err = check(&pool, SPIN).await.expect_err("stopped by SIGXCPU");
    assert!(matches!(err, Error::CpuLimit { .. }), "{err:?}");
    assert_eq!(err.to_string(), "pipeline evaluation exceeded its 1 s CPU time limit and was killed");
    // The limit counts CPU time, which lags the wall clock on a loaded machine (tests run
    // in parallel on two shared cores): allow for that generously.
    assert!(started.elapsed() < Duration::from_secs(2) + 4 * MARGIN, "{:?}", started.elapsed());
    serves(&pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_refused_at_once_and_drains() {
    let pool = unbounded_sandbox(|config| {
        config.workers = 1;
        config.queue = 1;
        config.kill_after = Duration::from_secs(1);
    });
    let running = tokio::spawn({
        let pool = pool.clone();
        async move { check(&pool, SPIN).await }
    });
    until(|| pool.running() == 1).await;
    let queued = tokio::spawn({
        let pool = pool.clone();
        async move { check(&pool, SPIN).await }
    });
    until(|| pool.queued() == 1).await;
    let started = Instant::now();
    let err = check(&pool, VALID).await.expect_err("the queue is full");
    assert!(started.elapsed() < Duration::from_secs(1), "refused at once, took {:?}", started.elapsed());
    assert_eq!(
        err.to_string(),
        "too many pipelines are waiting to be evaluated: all 1 evaluation workers are busy and the queue of 1 is full; retry shortly"
    );
    for handle in [running, queued] {
        let err = handle.await.expect("joined").expect_err("killed");
        assert!(matches!(err, Error::TimeBudget { .. }), "{err:?}");
    }
    assert_eq!((pool.running(), pool.queued()), (0, 0));
    serves(&pool).await;
}

#[tokio::test]
async fn a_caller_that_gives_up_frees_its_worker() {
    let pool = unbounded_sandbox(|config| config.workers = 1);
    let gave_up = tokio::time::timeout(Duration::from_millis(300), check(&pool, SPIN)).await;
    assert!(gave_up.is_err(), "the spin cannot finish");
    // The only slot is free again, and the spinning worker was killed, not reused.
    assert_eq!(pool.running(), 0);
    tokio::time::timeout(MARGIN, serves(&pool)).await.expect("the next evaluation gets a worker at once");
}

#[tokio::test]
async fn a_missing_worker_program_is_named() {
    let pool = Pool::new(PoolConfig::new(PathBuf::from("/nonexistent/rivet"), Limits::DEFINITION));
    let err = check(&pool, VALID).await.expect_err("no such program");
    assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
    assert!(err.to_string().starts_with("cannot start the evaluation worker `/nonexistent/rivet`"), "{err}");
}

#[tokio::test]
async fn a_source_larger_than_a_request_carries_is_the_scripts_limit() {
    let pool = Pool::new(config());
    let huge = format!("-- {}\n{VALID}", "x".repeat(rivet_evaluator::MAX_SOURCE_BYTES));
    let err = pool.check(huge.clone(), "huge.lua".to_owned()).await.expect_err("too large to send");
    assert!(matches!(err, Error::SourceTooLarge { .. }), "{err}");
    assert!(err.is_limit(), "the script is at fault, not the server");
    let folded = pool.evaluate(huge, "huge.lua".to_owned()).await.expect("a limit is the script's result");
    let Err(LoadError::Invalid(diagnostics)) = folded else { panic!("expected a diagnostic, got {folded:?}") };
    assert!(diagnostics[0].message.contains("KiB the evaluation workers accept"), "{diagnostics:?}");
    // The pool serves the next script as usual.
    check(&pool, VALID).await.expect("the pool serves").expect("valid");
}
