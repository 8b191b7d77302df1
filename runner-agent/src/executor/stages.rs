//! The stage driver: loads the pipeline into a Lua state, installs the runtime modules, and
//! runs the stages in order, reporting each one. It runs on the job's own thread.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mlua::Value;
use rivet_core::plugin::PinnedPlugin;
use rivet_core::{FailureReason, JobState, Limits, StageState};
use tokio::time::Instant;
use tracing::Instrument;

use super::context::JobContext;
use super::error::Error;
use super::podman::ensure_image;
use super::stop::{Finish, StageFailure, skip_message};
use super::supervisor::{StageClock, UNWIND_SLACK};
use crate::job::JobEvent;
use crate::runtime::{self, call_driven, on_host};

/// Loads the pipeline and runs its stages. Every stage is reported exactly once: stages
/// after a failed, cancelled or timed-out one are reported as skipped, saying why. Stops
/// come from the supervisor through the context (see `supervisor`).
pub(crate) async fn run(ctx: Arc<JobContext>, source: String, file: String, plugins: Vec<PinnedPlugin>) -> Finish {
    let limits = Limits { memory: ctx.config.lua_memory_bytes, time: ctx.config.lua_time_budget() };
    let pipeline = match rivet_core::load(&source, &file, limits) {
        Ok(pipeline) => pipeline,
        Err(err) => return Finish::failed(FailureReason::ScriptError, format!("the pipeline failed to load: {err}")),
    };
    let lua = pipeline.lua().clone();
    if let Err(why) = runtime::check_plugins(pipeline.definition(), &plugins) {
        return Finish::failed(FailureReason::ScriptError, why);
    }
    let installed = runtime::install(&lua, &ctx, pipeline.definition())
        .and_then(|()| rivet_core::plugin::install_require(&lua, plugins))
        .and_then(|()| ctx.budget.install(&lua));
    if let Err(err) = installed {
        return Finish::failed(FailureReason::Internal, format!("failed to set up the Lua runtime: {err}"));
    }
    let stages: Vec<_> =
        pipeline.definition().stages.iter().filter(|stage| pipeline.stage_functions(&stage.name).is_some()).collect();
    ctx.set_stages(stages.iter().map(|stage| stage.name.clone()).collect());

    let mut failure: Option<(String, StageFailure)> = None;
    let (mut ran, mut skipped) = (0, 0);
    for stage in stages {
        let Some(functions) = pipeline.stage_functions(&stage.name) else { continue };
        // A child of the job's span (this whole driver runs in it); the script's process
        // spans are its children.
        let span = tracing::info_span!(
            "stage",
            stage = %stage.name,
            image = tracing::field::Empty,
            state = tracing::field::Empty,
            failure_reason = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let trace = StageTrace { span: span.clone(), started: Instant::now() };
        if failure.is_none()
            && let Some(stop) = ctx.stop_failure()
        {
            failure = Some((String::new(), stop));
        }
        if let Some((failed, why)) = &failure {
            finish_stage(&ctx, &trace, &stage.name, StageState::Skipped, None, skip_message(failed, why));
            skipped += 1;
            continue;
        }

        let image = stage.container.clone().unwrap_or_else(|| ctx.config.default_image.clone());
        ctx.enter_stage(&stage.name, &image, stage.network.unwrap_or(ctx.config.default_network));
        span.record("image", image.as_str());
        if let Err(err) = ctx.budget.start(&lua) {
            return Finish::failed(FailureReason::Internal, format!("failed to arm the Lua time budget: {err}"));
        }

        if let Some(condition) = &functions.condition {
            let decided = guarded(&ctx, &stage.name, &file, call_driven::<Value>(&ctx, &lua, condition.clone(), ()))
                .instrument(span.clone())
                .await;
            match decided {
                Ok(Value::Nil | Value::Boolean(false)) => {
                    ctx.budget.suspend(&lua);
                    finish_stage(
                        &ctx,
                        &trace,
                        &stage.name,
                        StageState::Skipped,
                        None,
                        "its condition was false".to_owned(),
                    );
                    skipped += 1;
                    continue;
                }
                Ok(_) => {}
                Err(mut why) => {
                    ctx.budget.suspend(&lua);
                    why.message = format!("condition: {}", why.message);
                    finish_stage(&ctx, &trace, &stage.name, why.state, Some(why.reason), why.message.clone());
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
        let clock = StageClock { stage: stage.name.clone(), deadline: Instant::now() + timeout, limit: timeout };
        ctx.stage_clock.send_replace(Some(clock));
        let result = guarded(&ctx, &stage.name, &file, body).instrument(span.clone()).await;
        // Cleared before the result is judged: the supervisor records a stage's timeout only
        // while its clock is still published (see `supervisor::stage_timed_out`).
        ctx.stage_clock.send_replace(None);
        let result = match (result, ctx.stop_failure()) {
            (Ok(()), Some(why)) if why.ends(&stage.name) => Err(why),
            (result, _) => result,
        };
        ctx.budget.suspend(&lua);
        match result {
            Ok(()) => finish_stage(&ctx, &trace, &stage.name, StageState::Succeeded, None, String::new()),
            Err(why) => {
                finish_stage(&ctx, &trace, &stage.name, why.state, Some(why.reason), why.message.clone());
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
        Some((stage, why)) => Finish::of_failure(&stage, &why),
    }
}

/// A stage's span and when it began, for its end.
struct StageTrace {
    span: tracing::Span,
    started: Instant,
}

fn finish_stage(
    ctx: &JobContext,
    trace: &StageTrace,
    stage: &str,
    state: StageState,
    reason: Option<FailureReason>,
    message: String,
) {
    trace.span.record("state", state.as_str());
    if let Some(reason) = reason {
        trace.span.record("failure_reason", reason.as_str());
        trace.span.record("otel.status_code", "ERROR");
    }
    crate::metrics::get().stage_finished(state, trace.started.elapsed());
    ctx.emit(JobEvent::StageFinished {
        stage: stage.to_owned(),
        state,
        failure_reason: reason,
        message,
        at: Utc::now(),
    });
}

/// Runs a piece of script until it ends or the job is asked to stop. On a stop, the job's
/// processes are already being stopped (SIGTERM, then SIGKILL after the grace period); the
/// script gets that long to unwind before it is dropped. A script that cannot even be
/// dropped (stuck in a C call) is the supervisor's to abandon.
async fn guarded<T>(
    ctx: &JobContext,
    stage: &str,
    file: &str,
    work: impl Future<Output = mlua::Result<T>>,
) -> Result<T, StageFailure> {
    let mut work = std::pin::pin!(work);
    tokio::select! {
        result = &mut work => {
            return result.map_err(|err| match ctx.stop_failure() {
                // The script failed because it was stopped (its process was killed...).
                Some(why) if why.stage.is_none() || why.ends(stage) => why,
                _ => failure(ctx, err, file),
            });
        }
        () = ctx.stop.cancelled() => {}
    }
    let _ = tokio::time::timeout(ctx.config.cancel_grace() + UNWIND_SLACK, &mut work).await;
    Err(ctx.stop_failure().unwrap_or_else(StageFailure::cancelled))
}

/// Classifies an error a script ended with.
fn failure(ctx: &JobContext, err: mlua::Error, file: &str) -> StageFailure {
    if let Some(typed) = err.downcast_ref::<Error>() {
        if let Error::Stopped(reason) = typed {
            let message = match reason {
                FailureReason::Cancelled => "the job was cancelled".to_owned(),
                _ => "timed out".to_owned(),
            };
            return StageFailure::stopped(*reason, message);
        }
        return StageFailure {
            state: StageState::Failed,
            reason: typed.reason(),
            message: describe(&err, file),
            stage: None,
        };
    }
    let message = match root(&err) {
        mlua::Error::MemoryError(_) => {
            format!("the script ran out of memory (limit {} MiB)", ctx.config.lua_memory_bytes / (1024 * 1024))
        }
        _ => describe(&err, file),
    };
    StageFailure { state: StageState::Failed, reason: FailureReason::ScriptError, message, stage: None }
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
