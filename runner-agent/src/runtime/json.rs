//! `json.encode(value)` and `json.decode(text)`, with `json.null` for JSON's `null`.
//!
//! Tables with the keys `1..n` (and nothing else) become arrays, other tables objects
//! (string keys only), an empty table `{}`. Both directions are bounded: at most
//! [`MAX_DEPTH`] levels of nesting and [`MAX_JSON_BYTES`] of text, so a cyclic or huge
//! table fails with an error instead of exhausting the runner.

use mlua::{Lua, Table, Value};
use serde_json::{Map, Number, Value as Json};

/// The deepest nesting either direction accepts.
pub(crate) const MAX_DEPTH: usize = 100;
/// The longest JSON text either direction accepts, in bytes.
pub(crate) const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

pub(super) fn install(lua: &Lua) -> mlua::Result<()> {
    let json = lua.create_table()?;
    json.raw_set(
        "encode",
        lua.create_function(|_, value: Value| {
            let mut budget = MAX_JSON_BYTES;
            let tree =
                to_json(&value, 0, &mut budget).map_err(|err| mlua::Error::runtime(format!("json.encode: {err}")))?;
            let text =
                serde_json::to_string(&tree).map_err(|err| mlua::Error::runtime(format!("json.encode: {err}")))?;
            if text.len() > MAX_JSON_BYTES {
                return Err(mlua::Error::runtime(format!("json.encode: the text would exceed {MAX_JSON_BYTES} bytes")));
            }
            Ok(text)
        })?,
    )?;
    json.raw_set(
        "decode",
        lua.create_function(|lua, text: mlua::LuaString| {
            let bytes = text.as_bytes();
            if bytes.len() > MAX_JSON_BYTES {
                return Err(mlua::Error::runtime(format!(
                    "json.decode: the text is {} bytes; the limit is {MAX_JSON_BYTES}",
                    bytes.len()
                )));
            }
            // serde_json refuses nesting deeper than 128 levels while it parses.
            let tree: Json =
                serde_json::from_slice(&bytes).map_err(|err| mlua::Error::runtime(format!("json.decode: {err}")))?;
            to_lua(lua, &tree, 0)
        })?,
    )?;
    json.raw_set("null", Value::NULL)?;
    lua.globals().raw_set("json", json)
}

fn to_json(value: &Value, depth: usize, budget: &mut usize) -> Result<Json, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels (a table that contains itself?)"));
    }
    // Every value costs at least a byte of text: this bounds the work on wide tables.
    *budget = budget.checked_sub(1).ok_or_else(|| format!("the text would exceed {MAX_JSON_BYTES} bytes"))?;
    Ok(match value {
        Value::Nil => Json::Null,
        Value::LightUserData(data) if data.0.is_null() => Json::Null,
        Value::Boolean(flag) => Json::Bool(*flag),
        Value::Integer(number) => Json::Number((*number).into()),
        Value::Number(number) => Json::Number(
            Number::from_f64(*number).ok_or_else(|| format!("{number} has no JSON form (NaN or infinite)"))?,
        ),
        Value::String(text) => {
            let text = text.to_str().map_err(|_| "a string is not UTF-8".to_owned())?.to_owned();
            *budget = budget
                .checked_sub(text.len())
                .ok_or_else(|| format!("the text would exceed {MAX_JSON_BYTES} bytes"))?;
            Json::String(text)
        }
        Value::Table(table) => table_to_json(table, depth, budget)?,
        other => return Err(format!("a {} has no JSON form", other.type_name())),
    })
}

fn table_to_json(table: &Table, depth: usize, budget: &mut usize) -> Result<Json, String> {
    let length = table.raw_len();
    let mut count = 0usize;
    let mut all_strings = true;
    for pair in table.pairs::<Value, Value>() {
        let (key, _) = pair.map_err(|err| err.to_string())?;
        count += 1;
        all_strings &= matches!(key, Value::String(_));
    }
    if length > 0 && count == length {
        let items = (1..=length)
            .map(|i| to_json(&table.raw_get::<Value>(i).map_err(|err| err.to_string())?, depth + 1, budget))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Json::Array(items));
    }
    if !all_strings {
        return Err("a table mixes list items and keys, or has keys that are not strings".to_owned());
    }
    let mut map = Map::new();
    for pair in table.pairs::<mlua::LuaString, Value>() {
        let (key, value) = pair.map_err(|err| err.to_string())?;
        let key = key.to_str().map_err(|_| "a key is not UTF-8".to_owned())?.to_owned();
        *budget =
            budget.checked_sub(key.len()).ok_or_else(|| format!("the text would exceed {MAX_JSON_BYTES} bytes"))?;
        map.insert(key, to_json(&value, depth + 1, budget)?);
    }
    Ok(Json::Object(map))
}

fn to_lua(lua: &Lua, value: &Json, depth: usize) -> mlua::Result<Value> {
    if depth > MAX_DEPTH {
        return Err(mlua::Error::runtime(format!("json.decode: nested deeper than {MAX_DEPTH} levels")));
    }
    Ok(match value {
        Json::Null => Value::NULL,
        Json::Bool(flag) => Value::Boolean(*flag),
        Json::Number(number) => match number.as_i64() {
            Some(integer) => Value::Integer(integer),
            None => Value::Number(number.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(text) => Value::String(lua.create_string(text)?),
        Json::Array(items) => {
            let table = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                table.raw_set(i + 1, to_lua(lua, item, depth + 1)?)?;
            }
            Value::Table(table)
        }
        Json::Object(map) => {
            let table = lua.create_table_with_capacity(0, map.len())?;
            for (key, item) in map {
                table.raw_set(key.as_str(), to_lua(lua, item, depth + 1)?)?;
            }
            Value::Table(table)
        }
    })
}
