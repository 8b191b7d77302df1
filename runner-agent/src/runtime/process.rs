//! `process.run{cmd, args, cwd, env, capture_stdout, capture_stderr, stdout_level,
//! stderr_level}` → `{exit_code, stdout, stderr}`: runs a program, without a shell, in the
//! innermost container of the stage's stack. A non-zero exit code is a result, not an error.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use mlua::{Lua, Table, Value};
use rivet_core::LogLevel;
use tracing::Instrument;

use super::{check_driven, on_host, text_of};
use crate::executor::context::JobContext;
use crate::executor::podman::{ProcessRequest, ensure_image, run_process};
use crate::executor::workspace::resolve_cwd;

/// The most of a requested image reference a span records (the script chose it; it is
/// checked only when it is pulled).
const MAX_SPAN_IMAGE: usize = 256;

const FIELDS: &[&str] =
    &["cmd", "args", "cwd", "env", "capture_stdout", "capture_stderr", "stdout_level", "stderr_level"];

pub(super) fn install(lua: &Lua, ctx: &Arc<JobContext>) -> mlua::Result<()> {
    let process = lua.create_table()?;
    let c = ctx.clone();
    process.raw_set(
        "run",
        lua.create_async_function(move |lua, options: Value| {
            let ctx = c.clone();
            async move {
                check_driven(&ctx, &lua, "process.run")?;
                let request =
                    request(&ctx, options).map_err(|err| mlua::Error::runtime(format!("process.run: {err}")))?;
                // A child of the stage's span. The program's name only (masked like a log
                // line): its arguments and environment may hold secrets.
                let span = tracing::info_span!(
                    "process",
                    argv0 = %ctx.message(&request.cmd),
                    image = %rivet_core::text::truncate(&request.image, MAX_SPAN_IMAGE),
                    exit_code = tracing::field::Empty,
                    duration_ms = tracing::field::Empty,
                    otel.status_code = tracing::field::Empty,
                );
                let started = std::time::Instant::now();
                let result = {
                    let _waiting = ctx.budget.suspended(&lua);
                    let host_ctx = ctx.clone();
                    on_host(&ctx, async move {
                        ensure_image(host_ctx.clone(), request.image.clone(), request.stage.clone()).await?;
                        run_process(host_ctx, request).await
                    })
                    .instrument(span.clone())
                    .await
                };
                span.record("duration_ms", u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
                let result = match result {
                    Ok(result) => {
                        span.record("exit_code", result.exit_code);
                        result
                    }
                    Err(err) => {
                        span.record("otel.status_code", "ERROR");
                        return Err(err.into());
                    }
                };
                let table = lua.create_table()?;
                table.raw_set("exit_code", result.exit_code)?;
                table.raw_set("stdout", lua.create_string(&result.stdout)?)?;
                table.raw_set("stderr", lua.create_string(&result.stderr)?)?;
                Ok(table)
            }
        })?,
    )?;
    lua.globals().raw_set("process", process)
}

/// Checks the options table and resolves it into a request for the current container.
fn request(ctx: &JobContext, options: Value) -> Result<ProcessRequest, String> {
    let Value::Table(options) = options else {
        return Err(format!("expected a table of options, got a {}", options.type_name()));
    };
    for pair in options.clone().pairs::<Value, Value>() {
        let (key, _) = pair.map_err(|err| err.to_string())?;
        let known = matches!(&key, Value::String(name) if FIELDS.contains(&name.to_string_lossy().as_str()));
        if !known {
            let name = text_of(&key).unwrap_or_else(|| format!("a {} key", key.type_name()));
            return Err(format!("unknown option `{name}` (options: {})", FIELDS.join(", ")));
        }
    }

    let cmd = match options.raw_get::<Value>("cmd").map_err(|err| err.to_string())? {
        Value::String(cmd) if !cmd.as_bytes().is_empty() => cmd.to_string_lossy(),
        Value::Nil => return Err("`cmd` is required".to_owned()),
        other => return Err(format!("`cmd` must be a non-empty string, got {}", describe(&other))),
    };
    let cwd = optional_string(&options, "cwd")?;
    Ok(ProcessRequest {
        args: args(&options)?,
        cwd: resolve_cwd(&ctx.workspace, cwd.as_deref())?,
        env: env(&options)?,
        capture_stdout: flag(&options, "capture_stdout")?,
        capture_stderr: flag(&options, "capture_stderr")?,
        stdout_level: level(&options, "stdout_level", LogLevel::Info)?,
        stderr_level: level(&options, "stderr_level", LogLevel::Warning)?,
        image: ctx.current_image(),
        stage: ctx.stage(),
        cmd,
    })
}

fn args(options: &Table) -> Result<Vec<String>, String> {
    match options.raw_get::<Value>("args").map_err(|err| err.to_string())? {
        Value::Nil => Ok(Vec::new()),
        Value::Table(args) => (1..=args.raw_len())
            .map(|i| {
                let arg = args.raw_get::<Value>(i).map_err(|err| err.to_string())?;
                text_of(&arg).ok_or_else(|| format!("`args[{i}]` must be a string, got {}", describe(&arg)))
            })
            .collect(),
        other => Err(format!("`args` must be a list of strings, got {}", describe(&other))),
    }
}

fn env(options: &Table) -> Result<BTreeMap<String, String>, String> {
    let env = match options.raw_get::<Value>("env").map_err(|err| err.to_string())? {
        Value::Nil => return Ok(BTreeMap::new()),
        Value::Table(env) => env,
        other => return Err(format!("`env` must be a table of strings by name, got {}", describe(&other))),
    };
    let mut vars = BTreeMap::new();
    for pair in env.pairs::<Value, Value>() {
        let (name, value) = pair.map_err(|err| err.to_string())?;
        let name = match &name {
            Value::String(name) => name.to_string_lossy(),
            other => return Err(format!("`env` names must be strings, got {}", describe(other))),
        };
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(format!("`env` name `{name}` is not a valid variable name"));
        }
        let value =
            text_of(&value).ok_or_else(|| format!("`env.{name}` must be a string, got {}", describe(&value)))?;
        vars.insert(name, value);
    }
    Ok(vars)
}

fn optional_string(options: &Table, field: &str) -> Result<Option<String>, String> {
    match options.raw_get::<Value>(field).map_err(|err| err.to_string())? {
        Value::Nil => Ok(None),
        Value::String(text) => Ok(Some(text.to_string_lossy())),
        other => Err(format!("`{field}` must be a string, got {}", describe(&other))),
    }
}

fn flag(options: &Table, field: &str) -> Result<bool, String> {
    match options.raw_get::<Value>(field).map_err(|err| err.to_string())? {
        Value::Nil => Ok(false),
        Value::Boolean(flag) => Ok(flag),
        other => Err(format!("`{field}` must be a boolean, got {}", describe(&other))),
    }
}

fn level(options: &Table, field: &str, default: LogLevel) -> Result<LogLevel, String> {
    match optional_string(options, field)? {
        None => Ok(default),
        Some(name) => LogLevel::from_str(&name).map_err(|_| {
            let levels = LogLevel::ALL.iter().map(|level| format!("\"{level}\"")).collect::<Vec<_>>();
            format!("`{field}` must be one of {}, got \"{name}\"", levels.join(", "))
        }),
    }
}

fn describe(value: &Value) -> String {
    match text_of(value) {
        Some(text) if matches!(value, Value::String(_)) => format!("\"{text}\""),
        Some(text) => text,
        None => format!("a {}", value.type_name()),
    }
}
