//! `job`: what the running job is and what started it. `job.id()` is the job's id,
//! `job.attempt()` its attempt, and `job.origin()` a table saying what started it:
//! `{ kind = "api", caller = ... }`, `{ kind = "trigger", trigger_id, delivery_id, event,
//! sha, ref }`, `{ kind = "schedule", schedule_id, due }` (RFC 3339) or
//! `{ kind = "rerun", of }`.

use std::sync::Arc;

use mlua::{Lua, Table};
use rivet_core::JobOrigin;

use crate::executor::context::JobContext;

pub(super) fn install(lua: &Lua, ctx: &Arc<JobContext>) -> mlua::Result<()> {
    let job = lua.create_table()?;
    let id = ctx.assignment.job_id.to_string();
    job.raw_set("id", lua.create_function(move |_, ()| Ok(id.clone()))?)?;
    let attempt = ctx.assignment.attempt;
    job.raw_set("attempt", lua.create_function(move |_, ()| Ok(attempt))?)?;
    let c = ctx.clone();
    job.raw_set("origin", lua.create_function(move |lua, ()| origin(lua, &c.origin))?)?;
    lua.globals().raw_set("job", job)
}

/// A fresh table each call: a script may change it without changing what others see.
fn origin(lua: &Lua, origin: &JobOrigin) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.raw_set("kind", origin.kind())?;
    match origin {
        JobOrigin::Api { caller } => table.raw_set("caller", caller.clone())?,
        JobOrigin::Trigger { trigger_id, delivery_id, event, sha, git_ref } => {
            table.raw_set("trigger_id", trigger_id.to_string())?;
            table.raw_set("delivery_id", delivery_id.as_str())?;
            table.raw_set("event", event.as_str())?;
            table.raw_set("sha", sha.as_str())?;
            table.raw_set("ref", git_ref.as_str())?;
        }
        JobOrigin::Schedule { schedule_id, due } => {
            table.raw_set("schedule_id", schedule_id.to_string())?;
            table.raw_set("due", due.to_rfc3339())?;
        }
        JobOrigin::Rerun { of } => table.raw_set("of", of.to_string())?,
    }
    Ok(table)
}
