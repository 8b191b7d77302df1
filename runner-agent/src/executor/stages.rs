//! The stage driver: loads the pipeline into a Lua state, installs the runtime modules, and
//! runs the stages in order, reporting each one. It runs on the job's own thread.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mlua::Value;
use rivet_core::{FailureReason, JobState, Limits, StageState};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::context::JobContext;
use super::error::Error;
use super::podman::ensure_image;
use crate::job::JobEvent;
use crate::runtime::{self, call_driven, on_host};

/// How long a stopped script gets to unwind after its process's grace period.
const UNWIND_SLACK: Duration = Duration::from_secs(3);

/// How the stages ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finish {
    pub state: JobState,
    pub reason: Option<FailureReason>,
    pub message: String,
}

impl Finish {
    pub(crate) fn failed(reason: FailureReason, message: String) -> Self {
        Finish { state: JobState::Failed, reason: Some(reason), message }
    }
}

/// Why a stage did not succeed.
#[derive(Debug)]
struct StageFailure {
    state: StageState,
    reason: FailureReason,
    message: String,
}

/// What a running job must watch besides its script.
pub(crate) struct Watch {
    pub cancel: CancellationToken,
    pub job_deadline: Option<(Instant, Duration)>,
}

/// Loads the pipeline and runs its stages. Every stage is reported exactly once: stages
/// after a failed, cancelled or timed-out one are reported as skipped, saying why.
pub(crate) async fn run(ctx: Arc<JobContext>, source: String, file: String, watch: Watch) -> Finish {
    let limits = Limits { memory: ctx.config.lua_memory_bytes, time: ctx.config.lua_time_budget() };
    let pipeline = match rivet_core::load(&source, &file, limits) {
        Ok(pipeline) => pipeline,
        Err(err) => return Finish::failed(FailureReason::ScriptError, format!("the pipeline failed to load: {err}")),
    };
    let lua = pipeline.lua().clone();
    if let Err(err) = runtime::install(&lua, &ctx).and_then(|()| ctx.budget.install(&lua)) {
        return Finish::failed(FailureReason::Internal, format!("failed to set up the Lua runtime: {err}"));
    }

    let mut failure: Option<(String, StageFailure)> = None;
    let (mut ran, mut skipped) = (0, 0);
    for stage in &pipeline.definition().stages {
        let Some(functions) = pipeline.stage_functions(&stage.name) else { continue };
        if failure.is_none()
            && let Some(stop) = pending_stop(&watch)
        {
            failure = Some((String::new(), stop));
        }
        if let Some((failed, why)) = &failure {
            let message = match why.state {
                StageState::Cancelled => "not run: the job was cancelled".to_owned(),
                StageState::TimedOut if failed.is_empty() => "not run: the job timed out".to_owned(),
                _ => format!("not run: stage `{failed}` did not succeed"),
            };
            finish_stage(&ctx, &stage.name, StageState::Skipped, None, message);
            skipped += 1;
            continue;
        }

        let image = stage.container.clone().unwrap_or_else(|| ctx.config.default_image.clone());
        ctx.enter_stage(&stage.name, &image, stage.network.unwrap_or(ctx.config.default_network));
        if let Err(err) = ctx.budget.start(&lua) {
            return Finish::failed(FailureReason::Internal, format!("failed to arm the Lua time budget: {err}"));
        }

        if let Some(condition) = &functions.condition {
            let decided =
                guarded(&ctx, &watch, None, &file, call_driven::<Value>(&ctx, &lua, condition.clone(), ())).await;
            match decided {
                Ok(Value::Nil | Value::Boolean(false)) => {
                    ctx.budget.suspend(&lua);
                    finish_stage(&ctx, &stage.name, StageState::Skipped, None, "its condition was false".to_owned());
                    skipped += 1;
                    continue;
                }
                Ok(_) => {}
                Err(mut why) => {
                    ctx.budget.suspend(&lua);
                    why.message = format!("condition: {}", why.message);
                    finish_stage(&ctx, &stage.name, why.state, Some(why.reason), why.message.clone());
                    failure = Some((stage.name.clone(), why));
                    continue;
                }
            }
        }

        ctx.emit(JobEvent::StageStarted { stage: stage.name.clone(), at: Utc::now() });
        ran += 1;
        let timeout = stage.timeout_secs.map(Duration::from_secs).unwrap_or_else(|| ctx.config.stage_timeout());
        let body = async {
            {
                let _waiting = ctx.budget.suspended(&lua);
                on_host(&ctx, ensure_image(ctx.clone(), image.clone(), stage.name.clone())).await?;
            }
            call_driven::<()>(&ctx, &lua, functions.script.clone(), ()).await
        };
        let result = guarded(&ctx, &watch, Some((Instant::now() + timeout, timeout)), &file, body).await;
        ctx.budget.suspend(&lua);
        match result {
            Ok(()) => finish_stage(&ctx, &stage.name, StageState::Succeeded, None, String::new()),
            Err(why) => {
                finish_stage(&ctx, &stage.name, why.state, Some(why.reason), why.message.clone());
                failure = Some((stage.name.clone(), why));
            }
        }
    }

    match failure {
        None => Finish {
            state: JobState::Succeeded,
            reason: None,
            message: format!("{ran} stage(s) ran, {skipped} skipped"),
        },
        Some((stage, why)) => {
            let state = match why.state {
                StageState::Cancelled => JobState::Cancelled,
                StageState::TimedOut => JobState::TimedOut,
                _ => JobState::Failed,
            };
            let message = if stage.is_empty() { why.message } else { format!("stage `{stage}`: {}", why.message) };
            Finish { state, reason: Some(why.reason), message }
        }
    }
}

/// A stop that arrived between stages.
fn pending_stop(watch: &Watch) -> Option<StageFailure> {
    if watch.cancel.is_cancelled() {
        return Some(stopped(FailureReason::Cancelled, "the job was cancelled".to_owned()));
    }
    match watch.job_deadline {
        Some((deadline, limit)) if Instant::now() >= deadline => {
            Some(stopped(FailureReason::Timeout, format!("the job timed out after {limit:?}")))
        }
        _ => None,
    }
}

fn stopped(reason: FailureReason, message: String) -> StageFailure {
    let state = if reason == FailureReason::Cancelled { StageState::Cancelled } else { StageState::TimedOut };
    StageFailure { state, reason, message }
}

fn finish_stage(ctx: &JobContext, stage: &str, state: StageState, reason: Option<FailureReason>, message: String) {
    ctx.emit(JobEvent::StageFinished {
        stage: stage.to_owned(),
        state,
        failure_reason: reason,
        message,
        at: Utc::now(),
    });
}

/// Runs a piece of script until it ends, the job is cancelled, or a deadline passes. On a
/// stop, the job's processes are told to stop (SIGTERM, then SIGKILL after the grace
/// period) and the script gets that long to unwind before it is abandoned.
async fn guarded<T>(
    ctx: &JobContext,
    watch: &Watch,
    stage_deadline: Option<(Instant, Duration)>,
    file: &str,
    work: impl Future<Output = mlua::Result<T>>,
) -> Result<T, StageFailure> {
    let mut work = std::pin::pin!(work);
    let stage_timeout = sleep_until(stage_deadline.map(|(at, _)| at));
    let job_timeout = sleep_until(watch.job_deadline.map(|(at, _)| at));
    let why = tokio::select! {
        result = &mut work => return result.map_err(|err| failure(ctx, err, file)),
        () = watch.cancel.cancelled() => stopped(FailureReason::Cancelled, "the job was cancelled".to_owned()),
        () = stage_timeout => {
            let limit = stage_deadline.map(|(_, limit)| limit).unwrap_or_default();
            stopped(FailureReason::Timeout, format!("timed out after {limit:?}"))
        }
        () = job_timeout => {
            let limit = watch.job_deadline.map(|(_, limit)| limit).unwrap_or_default();
            stopped(FailureReason::Timeout, format!("the job timed out after {limit:?}"))
        }
    };
    ctx.request_stop(why.reason);
    let _ = tokio::time::timeout(ctx.config.cancel_grace() + UNWIND_SLACK, &mut work).await;
    Err(why)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Classifies an error a script ended with.
fn failure(ctx: &JobContext, err: mlua::Error, file: &str) -> StageFailure {
    if let Some(typed) = err.downcast_ref::<Error>() {
        if let Error::Stopped(reason) = typed {
            let message = match reason {
                FailureReason::Cancelled => "the job was cancelled".to_owned(),
                _ => "timed out".to_owned(),
            };
            return stopped(*reason, message);
        }
        return StageFailure { state: StageState::Failed, reason: typed.reason(), message: describe(&err, file) };
    }
    let message = match root(&err) {
        mlua::Error::MemoryError(_) => {
            format!("the script ran out of memory (limit {} MiB)", ctx.config.lua_memory_bytes / (1024 * 1024))
        }
        _ => describe(&err, file),
    };
    StageFailure { state: StageState::Failed, reason: FailureReason::ScriptError, message }
}

/// The innermost error, past the callbacks it crossed.
fn root(err: &mlua::Error) -> &mlua::Error {
    match err {
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => root(cause),
        other => other,
    }
}

/// `file:line: message` for a script error: Lua's own errors carry their place; errors
/// raised by runtime functions get the script line from the traceback.
fn describe(err: &mlua::Error, file: &str) -> String {
    let message = match root(err) {
        mlua::Error::RuntimeError(message) => message.clone(),
        mlua::Error::ExternalError(inner) => inner.to_string(),
        other => other.to_string(),
    };
    let first = message.lines().next().unwrap_or_default().trim().to_owned();
    let prefix = format!("{file}:");
    if first.starts_with(&prefix) {
        return first;
    }
    match traceback_line(err, &prefix) {
        Some(line) => format!("{file}:{line}: {first}"),
        None => first,
    }
}

fn traceback_line(err: &mlua::Error, prefix: &str) -> Option<u32> {
    match err {
        mlua::Error::CallbackError { traceback, cause } => traceback_line(cause, prefix).or_else(|| {
            traceback.lines().find_map(|line| {
                let rest = &line.trim()[line.trim().find(prefix)? + prefix.len()..];
                rest.split(':').next()?.parse().ok()
            })
        }),
        mlua::Error::WithContext { cause, .. } => traceback_line(cause, prefix),
        _ => None,
    }
}
