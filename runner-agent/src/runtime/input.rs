//! `input`: read-only access to the job's validated inputs. The untyped accessors return
//! strings (`"true"`, `"4"`), as the seed's examples compare them; the typed ones convert and
//! raise an error when the input is missing or of another type.

use std::sync::Arc;

use mlua::{IntoLua, Lua, Value};
use rivet_core::{InputType, InputValue};

use super::text_of;
use crate::executor::context::JobContext;

pub(super) fn install(lua: &Lua, ctx: &Arc<JobContext>) -> mlua::Result<()> {
    let input = lua.create_table()?;

    let c = ctx.clone();
    input.raw_set(
        "get",
        lua.create_function(move |_, (name, default): (String, Value)| {
            Ok(c.inputs.get(&name).map(ToString::to_string).or_else(|| text_of(&default)))
        })?,
    )?;

    let c = ctx.clone();
    input.raw_set("require", lua.create_function(move |_, name: String| Ok(value(&c, &name)?.to_string()))?)?;

    let c = ctx.clone();
    input.raw_set("has", lua.create_function(move |_, name: String| Ok(c.inputs.contains_key(&name)))?)?;

    let c = ctx.clone();
    input.raw_set(
        "all",
        lua.create_function(move |lua, ()| {
            lua.create_table_from(c.inputs.iter().map(|(name, value)| (name.clone(), value.to_string())))
        })?,
    )?;

    let c = ctx.clone();
    input.raw_set(
        "keys",
        // The inputs are kept in a sorted map, so the names come out sorted.
        lua.create_function(move |lua, ()| lua.create_sequence_from(c.inputs.keys().cloned()))?,
    )?;

    for wanted in [InputType::String, InputType::Number, InputType::Bool] {
        let c = ctx.clone();
        input.raw_set(wanted.as_str(), lua.create_function(move |lua, name: String| typed(lua, &c, &name, wanted))?)?;
    }

    lua.globals().raw_set("input", input)
}

fn value<'a>(ctx: &'a JobContext, name: &str) -> mlua::Result<&'a InputValue> {
    ctx.inputs.get(name).ok_or_else(|| mlua::Error::runtime(format!("input `{name}` is not set")))
}

fn typed(lua: &Lua, ctx: &JobContext, name: &str, wanted: InputType) -> mlua::Result<Value> {
    match value(ctx, name)? {
        InputValue::String(text) if wanted == InputType::String => text.as_str().into_lua(lua),
        InputValue::Bool(flag) if wanted == InputType::Bool => Ok(Value::Boolean(*flag)),
        InputValue::Number(number) if wanted == InputType::Number => {
            // Integral numbers come back as Lua integers, so they print without a fraction.
            if number.fract() == 0.0 && number.abs() < 9.0e15 {
                Ok(Value::Integer(*number as i64))
            } else {
                Ok(Value::Number(*number))
            }
        }
        other => Err(mlua::Error::runtime(format!("input `{name}` is a {}, not a {}", other.input_type(), wanted))),
    }
}
