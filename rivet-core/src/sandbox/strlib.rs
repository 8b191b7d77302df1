//! Replaces `string.find`, `string.match`, `string.gmatch` and `string.gsub` with the
//! Rust pattern engine of `pattern`, which checks the time budget while it matches.

use mlua::Lua;

/// Installs the bounded pattern functions into the state's `string` table.
pub(crate) fn install(_lua: &Lua) -> mlua::Result<()> {
    // Filled in by the bounded pattern engine; until then Lua's own functions stay.
    Ok(())
}
