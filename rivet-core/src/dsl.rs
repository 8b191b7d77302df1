//! The `pipeline` global: `pipeline.define{...}`, the fluent `pipeline.builder()`, and the
//! helpers `pipeline.input`, `pipeline.stage` and `pipeline.tag`.
//!
//! These functions only collect tables; validation happens afterwards, in Rust, over the
//! table the script returns (see `validate`). What they add is *where*: every table they
//! see is remembered with the line of the call that made it, so that a diagnostic can
//! point at the right line even though Lua tables carry no positions.

use std::collections::VecDeque;

use mlua::{Function, Lua, Table, Value, Variadic};

const LINES_KEY: &str = "rivet.lines";
const DEFINITION_META_KEY: &str = "rivet.definition";
const BUILDER_META_KEY: &str = "rivet.builder";

/// Installs the `pipeline` global into `lua`.
pub(crate) fn install(lua: &Lua) -> mlua::Result<()> {
    // Weak keys: remembering a table's line must not keep it alive.
    let lines = lua.create_table()?;
    let weak = lua.create_table()?;
    weak.raw_set("__mode", "k")?;
    lines.set_metatable(Some(weak))?;
    lua.set_named_registry_value(LINES_KEY, lines)?;
    lua.set_named_registry_value(DEFINITION_META_KEY, protected_table(lua)?)?;

    let pipeline = lua.create_table()?;
    pipeline.raw_set("define", lua.create_function(|lua, spec: Value| define(lua, spec, caller_line(lua)))?)?;
    pipeline.raw_set("builder", lua.create_function(|lua, ()| new_builder(lua))?)?;
    pipeline.raw_set(
        "input",
        lua.create_function(|lua, (name, spec): (Value, Value)| {
            let spec = expect_table(spec, "pipeline.input(name, spec)", "spec")?;
            spec.raw_set("name", name)?;
            remember_line(lua, &spec, caller_line(lua))?;
            Ok(spec)
        })?,
    )?;
    pipeline.raw_set(
        "stage",
        lua.create_function(|lua, spec: Value| {
            let spec = expect_table(spec, "pipeline.stage(spec)", "spec")?;
            remember_line(lua, &spec, caller_line(lua))?;
            Ok(spec)
        })?,
    )?;
    pipeline.raw_set(
        "tag",
        lua.create_function(|lua, (key, value): (Value, Value)| {
            let tag = lua.create_table()?;
            tag.raw_set("key", key)?;
            tag.raw_set("value", value)?;
            remember_line(lua, &tag, caller_line(lua))?;
            Ok(tag)
        })?,
    )?;
    lua.set_named_registry_value(BUILDER_META_KEY, builder_metatable(lua)?)?;
    lua.globals().raw_set("pipeline", pipeline)?;
    Ok(())
}

/// The line of the Lua code that called the running Rust function.
fn caller_line(lua: &Lua) -> u32 {
    lua.inspect_stack(1, |debug| debug.current_line()).flatten().and_then(|line| u32::try_from(line).ok()).unwrap_or(0)
}

/// Records that `table` was written at `line`, unless an earlier, more precise call did.
fn remember_line(lua: &Lua, table: &Table, line: u32) -> mlua::Result<()> {
    let lines: Table = lua.named_registry_value(LINES_KEY)?;
    if lines.raw_get::<Value>(table)?.is_nil() && line > 0 {
        lines.raw_set(table, line)?;
    }
    Ok(())
}

/// The line recorded for `table`, if any.
pub(crate) fn line_of(lua: &Lua, table: &Table) -> Option<u32> {
    let lines: Table = lua.named_registry_value(LINES_KEY).ok()?;
    lines.raw_get::<Option<u32>>(table).ok().flatten()
}

fn expect_table(value: Value, call: &str, what: &str) -> mlua::Result<Table> {
    match value {
        Value::Table(table) => Ok(table),
        other => Err(mlua::Error::runtime(format!("{call}: {what} must be a table, got {}", other.type_name()))),
    }
}

/// `pipeline.define(spec)`: wraps the spec in a marked table so the loader can tell a
/// definition from any other value the script might return.
fn define(lua: &Lua, spec: Value, line: u32) -> mlua::Result<Table> {
    let spec = expect_table(spec, "pipeline.define{...}", "the definition")?;
    remember_line(lua, &spec, line)?;
    let definition = lua.create_table()?;
    definition.raw_set("spec", spec)?;
    definition.set_metatable(Some(lua.named_registry_value::<Table>(DEFINITION_META_KEY)?))?;
    Ok(definition)
}

/// The spec table of a value made by `pipeline.define`, or `None` for anything else.
pub(crate) fn definition_spec(lua: &Lua, value: &Value) -> mlua::Result<Option<Table>> {
    let Value::Table(table) = value else { return Ok(None) };
    let marker: Table = lua.named_registry_value(DEFINITION_META_KEY)?;
    match table.metatable() {
        Some(meta) if meta == marker => Ok(Some(table.raw_get("spec")?)),
        _ => Ok(None),
    }
}

/// A builder is a table `{ spec = {...} }` whose metatable offers the fluent methods.
fn new_builder(lua: &Lua) -> mlua::Result<Table> {
    let spec = lua.create_table()?;
    remember_line(lua, &spec, caller_line(lua))?;
    let builder = lua.create_table()?;
    builder.raw_set("spec", spec)?;
    builder.set_metatable(Some(lua.named_registry_value::<Table>(BUILDER_META_KEY)?))?;
    Ok(builder)
}

fn builder_metatable(lua: &Lua) -> mlua::Result<Table> {
    let methods = lua.create_table()?;
    for field in ["name", "description"] {
        methods.raw_set(
            field,
            builder_method(lua, field, move |_, spec, mut args| {
                spec.raw_set(field, args.pop_front().unwrap_or(Value::Nil))?;
                Ok(())
            })?,
        )?;
    }
    methods.raw_set(
        "input",
        builder_method(lua, "input", |lua, spec, mut args| {
            let name = args.pop_front().unwrap_or(Value::Nil);
            let input = expect_table(args.pop_front().unwrap_or(Value::Nil), "builder:input(name, spec)", "spec")?;
            input.raw_set("name", name)?;
            remember_line(lua, &input, caller_line(lua))?;
            append(lua, &spec, "inputs", Value::Table(input))
        })?,
    )?;
    methods.raw_set(
        "tag",
        builder_method(lua, "tag", |lua, spec, mut args| {
            // Either `:tag{ key = .., value = .. }` or `:tag(key, value)`.
            let tag = match args.pop_front().unwrap_or(Value::Nil) {
                Value::Table(tag) => tag,
                key => {
                    let tag = lua.create_table()?;
                    tag.raw_set("key", key)?;
                    tag.raw_set("value", args.pop_front().unwrap_or(Value::Nil))?;
                    tag
                }
            };
            remember_line(lua, &tag, caller_line(lua))?;
            append(lua, &spec, "runner", Value::Table(tag))
        })?,
    )?;
    for (method, field) in [("plugin", "plugins"), ("secret", "secrets")] {
        methods.raw_set(
            method,
            builder_method(lua, method, move |lua, spec, mut args| {
                append(lua, &spec, field, args.pop_front().unwrap_or(Value::Nil))
            })?,
        )?;
    }
    methods.raw_set(
        "stage",
        builder_method(lua, "stage", |lua, spec, mut args| {
            let stage = expect_table(args.pop_front().unwrap_or(Value::Nil), "builder:stage(spec)", "spec")?;
            remember_line(lua, &stage, caller_line(lua))?;
            append(lua, &spec, "stages", Value::Table(stage))
        })?,
    )?;
    methods.raw_set(
        "build",
        lua.create_function(|lua, builder: Value| {
            let builder = builder_self(builder, "build")?;
            let spec: Table = builder.raw_get("spec")?;
            define(lua, Value::Table(spec), caller_line(lua))
        })?,
    )?;
    let meta = protected_table(lua)?;
    meta.raw_set("__index", methods)?;
    Ok(meta)
}

/// A metatable scripts can neither read nor change: `getmetatable` answers `false`, so
/// no script can add `__close` or `__gc` to it (see `sandbox::metatable`).
fn protected_table(lua: &Lua) -> mlua::Result<Table> {
    let meta = lua.create_table()?;
    meta.raw_set("__metatable", false)?;
    Ok(meta)
}

/// A fluent method: applies `step` to the builder's spec and returns the builder.
fn builder_method(
    lua: &Lua,
    name: &'static str,
    step: impl Fn(&Lua, Table, VecDeque<Value>) -> mlua::Result<()> + Send + Sync + 'static,
) -> mlua::Result<Function> {
    lua.create_function(move |lua, mut args: Variadic<Value>| {
        let this = if args.is_empty() { Value::Nil } else { args.remove(0) };
        let builder = builder_self(this, name)?;
        step(lua, builder.raw_get("spec")?, args.into_iter().collect())?;
        Ok(builder)
    })
}

fn builder_self(value: Value, method: &str) -> mlua::Result<Table> {
    match value {
        Value::Table(table) if table.raw_get::<Value>("spec")?.is_table() => Ok(table),
        _ => Err(mlua::Error::runtime(format!("builder:{method}(...) must be called with a colon, on a builder"))),
    }
}

/// Appends `value` to the array `spec[field]`, creating it on first use.
fn append(lua: &Lua, spec: &Table, field: &str, value: Value) -> mlua::Result<()> {
    let list = match spec.raw_get::<Value>(field)? {
        Value::Table(list) => list,
        _ => {
            let list = lua.create_table()?;
            spec.raw_set(field, list.clone())?;
            list
        }
    };
    list.raw_push(value)
}
