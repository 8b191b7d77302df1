//! `log.debug/info/warning/error(msg)`: lines in the job's log, under the current stage,
//! with secrets masked. A message of several lines becomes several log lines.

use std::sync::Arc;

use mlua::{Lua, Value};
use rivet_core::LogLevel;

use super::text_of;
use crate::executor::context::JobContext;

pub(super) fn install(lua: &Lua, ctx: &Arc<JobContext>) -> mlua::Result<()> {
    let log = lua.create_table()?;
    for level in LogLevel::ALL.iter().copied() {
        let ctx = ctx.clone();
        let function = lua.create_function(move |_, message: Value| {
            let text = match &message {
                Value::Nil => "nil".to_owned(),
                other => text_of(other).ok_or_else(|| {
                    mlua::Error::runtime(format!("log.{level}: expected a string, got a {}", other.type_name()))
                })?,
            };
            let text = text.strip_suffix('\n').unwrap_or(&text);
            for line in text.split('\n') {
                ctx.log(level, line.strip_suffix('\r').unwrap_or(line));
            }
            Ok(())
        })?;
        log.raw_set(level.as_str(), function)?;
    }
    lua.globals().raw_set("log", log)
}
