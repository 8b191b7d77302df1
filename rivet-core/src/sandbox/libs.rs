//! Installs the sandbox's own versions of the standard-library functions whose work a
//! script could otherwise make unbounded (see the audit in the module documentation).
//! They are written in Lua (`lua/*.lua`), so their loops run VM instructions the time
//! budget's hook counts; each chunk receives the original C functions it still uses
//! before any script can touch the globals.

use mlua::{Function, Lua, Table, Value};

use super::check_deadline;
use super::chunk::Chunk;

/// The longest format `os.date` accepts: every conversion costs a call to `strftime`.
pub const MAX_DATE_FORMAT: usize = 256;

static ARGS: Chunk = Chunk::new("=args", include_str!("lua/args.lua"));
static TABLE: Chunk = Chunk::new("=table", include_str!("lua/table.lua"));
static METATABLE: Chunk = Chunk::new("=metatable", include_str!("lua/metatable.lua"));
static COROUTINE: Chunk = Chunk::new("=coroutine", include_str!("lua/coroutine.lua"));
static TEXT: Chunk = Chunk::new("=string", include_str!("lua/text.lua"));

/// Runs one of the chunks above with `args` and returns what it returns.
fn run<R: mlua::FromLuaMulti>(lua: &Lua, chunk: &Chunk, args: impl mlua::IntoLuaMulti) -> mlua::Result<R> {
    chunk.load(lua)?.call(args)
}

pub(crate) fn install(lua: &Lua) -> mlua::Result<()> {
    let globals = lua.globals();
    let get = |table: &Table, name: &str| table.raw_get::<Value>(name);
    let math: Table = globals.raw_get("math")?;
    let string: Table = globals.raw_get("string")?;
    let table: Table = globals.raw_get("table")?;
    let os: Table = globals.raw_get("os")?;
    let coroutine: Table = globals.raw_get("coroutine")?;
    let (getmetatable, setmetatable) = (get(&globals, "getmetatable")?, get(&globals, "setmetatable")?);

    let args: Table = run(
        lua,
        &ARGS,
        (
            getmetatable.clone(),
            get(&globals, "rawget")?,
            get(&globals, "type")?,
            get(&globals, "error")?,
            get(&math, "tointeger")?,
            get(&globals, "tonumber")?,
            get(&globals, "tostring")?,
        ),
    )?;

    let ported_unpack_original = get(&table, "unpack")?;
    let ported: Table = run(
        lua,
        &TABLE,
        (
            args.clone(),
            get(&table, "concat")?,
            get(&table, "unpack")?,
            getmetatable.clone(),
            get(&os, "clock")?,
            get(&os, "time")?,
        ),
    )?;
    for name in ["insert", "remove", "move", "concat", "unpack", "sort"] {
        table.raw_set(name, get(&ported, name)?)?;
    }

    let (set, get_meta): (Function, Function) = run(lua, &METATABLE, (setmetatable, getmetatable, args.clone()))?;
    globals.raw_set("setmetatable", set)?;
    globals.raw_set("getmetatable", get_meta)?;

    let expired = lua.create_function(|lua, ()| check_deadline(lua))?;
    let guarded: Table = run(
        lua,
        &COROUTINE,
        (
            expired,
            get(&coroutine, "create")?,
            get(&coroutine, "resume")?,
            get(&coroutine, "close")?,
            get(&coroutine, "status")?,
            get(&table, "pack")?,
            ported_unpack_original.clone(),
            args.clone(),
        ),
    )?;
    for name in ["create", "resume", "wrap"] {
        coroutine.raw_set(name, get(&guarded, name)?)?;
    }

    let (rep, date): (Function, Function) =
        run(lua, &TEXT, (get(&string, "rep")?, get(&os, "date")?, MAX_DATE_FORMAT, args))?;
    string.raw_set("rep", rep)?;
    os.raw_set("date", date)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use mlua::{Function, Lua};

    use crate::sandbox::{Limits, arm, new_state};

    /// Runs a case and describes what it returned or raised, and what the tables it
    /// touched hold afterwards (`t`, `u`, and the log of metamethod calls).
    const DESCRIBE: &str = r##"
        local case = ...
        local log = {}
        local function proxy(backing)
            return setmetatable({}, {
                __index = function(_, k) log[#log + 1] = "r" .. tostring(k) return backing[k] end,
                __newindex = function(_, k, v) log[#log + 1] = "w" .. tostring(k) backing[k] = v end,
                __len = function() log[#log + 1] = "#" return #backing end,
            })
        end
        local t = { 5, 3, 8, 1, 9, 2, 7, 4, 6, 0, 11, 15, 13, 12, 14 }
        local u = { "a", "b", "c" }
        local p = proxy({ 3, 1, 2, 5, 4 })
        local results = table.pack(pcall(case, t, u, p))
        local parts = { tostring(results.n - 1) }
        for i = 1, results.n do
            local v = results[i]
            parts[#parts + 1] = type(v) == "table" and "table" or type(v) .. ":" .. tostring(v)
        end
        local function dump(x) local out = {} for i = 1, 20 do out[i] = tostring(rawget(x, i)) end return table.concat(out, ",") end
        parts[#parts + 1] = "t=" .. dump(t)
        parts[#parts + 1] = "u=" .. dump(u)
        parts[#parts + 1] = "log=" .. table.concat(log, ",")
        return table.concat(parts, " ")
    "##;

    /// Calls of the ported table functions; `t`, `u` and the proxy `p` are the arguments.
    #[rustfmt::skip]
    const CASES: &[&str] = &[
        "table.insert(t, 42)", "table.insert(t, 1, 42)", "table.insert(t, 16, 42)", "table.insert(t, 17, 42)",
        "table.insert(t, 0, 42)", "table.insert(t, -1, 42)", "table.insert(t)", "table.insert(t, 1, 2, 3)",
        "table.insert(nil, 1)", "table.insert(t, 'x', 1)", "table.insert(t, 1.5, 1)", "table.insert(t, '2', 1)",
        "table.insert(p, 1, 42)", "table.insert(p, 42)", "table.insert('abc', 1)",
        "return table.remove(t)", "return table.remove(t, 1)", "return table.remove(t, 15)", "return table.remove(t, 16)",
        "return table.remove(t, 17)", "return table.remove(t, 0)", "return table.remove({})", "return table.remove({}, 0)",
        "return table.remove({}, 1)", "return table.remove({}, 2)", "return table.remove(p, 2)", "return table.remove(nil)",
        "return table.move(t, 1, 3, 2)", "return table.move(t, 2, 4, 1)", "return table.move(t, 1, 3, 1, u)",
        "return table.move(t, 1, 0, 1, u)", "return table.move(t, 1, 3, 3, t)", "return table.move(p, 1, 3, 2)",
        "return table.move(t, 1, 3, 2, p)", "return table.move(t, -2, 2, 1, u)", "return table.move(t, 1, math.maxinteger, 2)",
        "return table.move(t, math.mininteger, 1, 2)", "return table.move(t, 1, 2, math.maxinteger)",
        "return table.move(t, 1)", "return table.move(t, 1, 2)", "return table.move(t, 1, 2, 3, 4)", "return table.move(1, 1, 2, 3)",
        "return table.concat(t)", "return table.concat(t, ', ')", "return table.concat(t, 1, 2, 4)", "return table.concat(u, '-', 2)",
        "return table.concat(u, '-', 3, 2)", "return table.concat(u, '-', 1, 5)", "return table.concat({ 1, {}, 3 })",
        "return table.concat({ 1, 2.5, -0.0, 1e100, 2^63 })", "return table.concat(p, '+')", "return table.concat(u, {})",
        "return table.concat(u, '', 'x')", "return table.concat(nil)", "return table.concat({ true })",
        "return table.unpack(t)", "return table.unpack(u, 2)", "return table.unpack(u, 2, 5)", "return table.unpack(u, 3, 1)",
        "return table.unpack(p)", "return table.unpack(p, -1, 1)", "return table.unpack(u, 1, 1e7)",
        "return table.unpack(u, math.mininteger, math.maxinteger)", "return table.unpack('abc')", "return table.unpack(nil)",
        "return table.unpack(u, 'x')", "return table.unpack(u, 1, 2.5)",
        "table.sort(t)", "table.sort(t, function(a, b) return a > b end)", "table.sort(u, function(a, b) return a > b end)",
        "table.sort(p)", "table.sort({ 3, 'x', 1 })", "table.sort(t, function() return true end)",
        "table.sort(t, function() return false end)", "table.sort(t, 1)", "table.sort(t, false)", "table.sort(nil)",
        "table.sort({})", "table.sort({ 1 })",
        "local big = {} for i = 1, 300 do big[i] = (i * 37) % 101 end table.sort(big) for i = 1, 15 do t[i] = big[i * 20] end",
        "local big = {} for i = 1, 300 do big[i] = { k = (i * 37) % 11, i = i } end \
         table.sort(big, function(a, b) return a.k < b.k end) for i = 1, 15 do t[i] = big[i * 20].i end",
        "return string.rep('ab', 3)", "return string.rep('ab', 3, ', ')", "return string.rep('', 5)", "return string.rep('x', 0)",
        "return string.rep('x', -1, 'y')", "return string.rep('x', 2.0)", "return string.rep(12, '2')", "return string.rep('x')",
        "return string.rep({}, 2)", "return string.rep('x', 2.5)", "return string.rep('x', 2, {})", "return string.rep('x', 1e10)",
        "return ('x'):rep(3)",
        "return coroutine.wrap(function(a) local b = coroutine.yield(a + 1) return b * 2 end)(1)",
        "local f = coroutine.wrap(function() error('boom') end) local r = f() return r",
        "local f = coroutine.wrap(function() error({}) end) return f()",
        "local f = coroutine.wrap(function() end) f() local r = f() return r",
        "return coroutine.resume(coroutine.create(function(...) return ... end), 1, 2)",
        "return coroutine.resume(nil)", "return coroutine.create(1)", "return coroutine.wrap()",
        "return getmetatable(setmetatable({}, { __metatable = 'x' }))", "return setmetatable({})", "return setmetatable({}, 1)",
        "return setmetatable(1, {})", "return getmetatable()", "return getmetatable('').__index == string",
    ];

    fn describe(lua: &Lua, case: &str) -> String {
        let run = || -> mlua::Result<String> {
            // No tail calls: one hides the calling line (see `strlib::WRAPPERS`).
            let body = match case.strip_prefix("return ") {
                Some(expression) => format!("local r = table.pack({expression}) return table.unpack(r, 1, r.n)"),
                None => case.to_string(),
            };
            let case: Function = lua.load(format!("return function(t, u, p)\n{body}\nend")).set_name("=case").eval()?;
            lua.load(DESCRIBE).set_name("=describe").call(case)
        };
        run().unwrap_or_else(|err| format!("host error: {err}"))
    }

    /// Every case gives the same results, errors, table contents and metamethod calls with
    /// Lua's C functions (a plain state) and with the sandbox's versions.
    #[test]
    fn ported_functions_agree_with_lua() {
        let reference = Lua::new();
        let sandbox = new_state(Limits::DEFINITION).expect("sandbox state");
        let mut failures = Vec::new();
        for case in CASES {
            arm(&sandbox).expect("arm");
            let (expected, actual) = (describe(&reference, case), describe(&sandbox, case));
            if expected != actual {
                failures.push(format!("{case}\n  lua:  {expected}\n  ours: {actual}"));
            }
        }
        assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), CASES.len(), failures.join("\n"));
    }
}
