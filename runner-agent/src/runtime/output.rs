//! `output.set(key, value)` / `output.get(key)`: the job's results, shared by its stages and
//! returned with the job's outcome. Values are stored as text.

use std::sync::Arc;

use mlua::{Lua, Value};

use super::text_of;
use crate::executor::context::JobContext;

pub(super) fn install(lua: &Lua, ctx: &Arc<JobContext>) -> mlua::Result<()> {
    let output = lua.create_table()?;

    let c = ctx.clone();
    output.raw_set(
        "set",
        lua.create_function(move |_, (key, value): (String, Value)| {
            let text = text_of(&value).ok_or_else(|| {
                mlua::Error::runtime(format!(
                    "output.set: the value of `{key}` must be a string, number or boolean, got a {}",
                    value.type_name()
                ))
            })?;
            c.outputs().set(&key, text).map_err(|err| mlua::Error::runtime(format!("output.set: {err}")))
        })?,
    )?;

    let c = ctx.clone();
    output.raw_set("get", lua.create_function(move |_, key: String| Ok(c.outputs().get(&key).map(str::to_owned)))?)?;

    lua.globals().raw_set("output", output)
}
