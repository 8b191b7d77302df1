//! The modules a pipeline script uses while a job runs: `log`, `input`, `output`,
//! `container`, `process`, `secret`, `fs`, `http` and `json` (documented for script authors
//! in `lua-stubs/`).
//!
//! They are Rust functions installed as globals in the job's Lua state. The ones that wait
//! on the host (`container.with` pulling an image, `process.run`) are async: they suspend
//! the stage's Lua time budget, hand the Podman work to the runner's runtime, and resume the
//! budget when the work is done.

pub(crate) mod budget;
mod container;
#[cfg(feature = "fault-injection")]
mod fault;
mod fs;
pub mod http;
mod input;
mod job;
mod json;
mod log;
mod output;
mod process;
mod secret;

use std::future::Future;
use std::sync::Arc;

use mlua::{FromLuaMulti, Function, IntoLuaMulti, Lua, Value};
use rivet_core::PipelineDefinition;
use rivet_core::plugin::{PinnedPlugin, PluginRef};

use crate::executor::Error;
use crate::executor::context::JobContext;

/// Installs every runtime module into `lua`, for the pipeline `definition`.
pub(crate) fn install(lua: &Lua, ctx: &Arc<JobContext>, definition: &PipelineDefinition) -> mlua::Result<()> {
    log::install(lua, ctx)?;
    input::install(lua, ctx)?;
    job::install(lua, ctx)?;
    output::install(lua, ctx)?;
    container::install(lua, ctx)?;
    process::install(lua, ctx)?;
    fs::install(lua, ctx)?;
    http::install(lua, ctx, definition.http.clone())?;
    json::install(lua)?;
    secret::install(lua, ctx)?;
    #[cfg(feature = "fault-injection")]
    fault::install(lua)?;
    Ok(())
}

/// Checks that the assignment carries a pinned source for every plugin the pipeline names
/// (`require` serves only those).
pub(crate) fn check_plugins(definition: &PipelineDefinition, plugins: &[PinnedPlugin]) -> Result<(), String> {
    let missing: Vec<&str> = definition
        .plugins
        .iter()
        .filter_map(|text| {
            let name = PluginRef::parse(text).map(|reference| reference.name).unwrap_or_else(|_| text.clone());
            (!plugins.iter().any(|plugin| plugin.pin.name == name)).then_some(text.as_str())
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("the assignment carries no pinned source for the plugin(s) {}", missing.join(", ")))
    }
}

/// Calls `function` on a Lua thread of its own that the runner drives asynchronously, so
/// that the runtime's async functions may wait inside it.
///
/// Those functions refuse to run on any other thread: in a coroutine the script resumes
/// itself, a wait would hand the script mlua's "pending" marker instead of a result and
/// leave the host work running unobserved, with the Lua time budget suspended.
pub(crate) async fn call_driven<R: FromLuaMulti>(
    ctx: &JobContext,
    lua: &Lua,
    function: Function,
    args: impl IntoLuaMulti,
) -> mlua::Result<R> {
    struct Driven<'a>(&'a JobContext, usize);
    impl Drop for Driven<'_> {
        fn drop(&mut self) {
            self.0.set_driven(self.1, false);
        }
    }
    let thread = lua.create_thread(function)?;
    let key = thread.to_pointer() as usize;
    ctx.set_driven(key, true);
    let _driven = Driven(ctx, key);
    thread.into_async::<R>(args)?.await
}

/// Fails unless the calling Lua thread is one the runner drives (see [`call_driven`]).
pub(crate) fn check_driven(ctx: &JobContext, lua: &Lua, function: &str) -> mlua::Result<()> {
    if ctx.is_driven(lua.current_thread().to_pointer() as usize) {
        Ok(())
    } else {
        Err(mlua::Error::runtime(format!(
            "{function} cannot be called inside a coroutine: it waits for the host, call it from the stage's function"
        )))
    }
}

/// Runs `work` on the runner's runtime, where the job's Podman I/O happens, and waits for it.
pub(crate) async fn on_host<T: Send + 'static>(
    ctx: &JobContext,
    work: impl Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    ctx.tasks.spawn_on(work, &ctx.handle).await.map_err(|err| Error::Thread(err.to_string()))?
}

/// The text of a string, number or boolean argument: what `log`, `output` and the process
/// options accept where they expect text.
pub(crate) fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.to_string_lossy()),
        Value::Integer(number) => Some(number.to_string()),
        Value::Number(number) if number.fract() == 0.0 && number.abs() < 1e15 => Some((*number as i64).to_string()),
        Value::Number(number) => Some(number.to_string()),
        Value::Boolean(value) => Some(value.to_string()),
        _ => None,
    }
}
