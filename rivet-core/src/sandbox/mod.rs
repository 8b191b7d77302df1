//! The Lua sandbox every pipeline script runs in.
//!
//! Only the safe parts of the standard library are offered: `table`, `string` (without
//! `dump`), `math`, `utf8`, `coroutine`, and a time-only subset of `os`. There is no `io`,
//! `debug`, `package`, `require` of files, `dofile`, `loadfile`, binary `load`, or
//! `collectgarbage` control.
//!
//! # Limits
//!
//! Two limits hold for every evaluation:
//! * memory: the allocator refuses to grow the state past [`Limits::memory`];
//! * time: once [`Limits::time`] has passed, a hook stops the script. The hook fires every
//!   [`HOOK_PERIOD`] VM instructions *and on every function call* (Lua or C, including
//!   metamethods called from C), on every Lua thread: coroutines inherit it. Once the
//!   budget is spent it fires on every instruction, so `pcall` cannot swallow it.
//!
//! The hook cannot see inside one C call. So the invariant is: **every C function a script
//! can reach does work bounded by memory the script already paid for, by a fixed cap, or
//! checks the deadline itself.** Functions that broke it are replaced (most by Lua ports
//! in `lua/*.lua`, whose loops are instructions the hook counts; see `libs`).
//!
//! Code that Lua runs with hooks off could escape the budget: finalizers (`__gc`) always,
//! and close handlers (`__close`) of a coroutine the budget killed, when `coroutine.wrap`
//! or `coroutine.close` closes it. No metatable a script can reach ever holds them:
//! `setmetatable` refuses them and installs a frozen copy without them (`lua/metatable.lua`),
//! the string metatable is read-only, and the DSL's metatables are protected.
//! `xpcall`'s message handler also runs with hooks off, so `xpcall` is rebuilt on `pcall`.
//!
//! # Audit of every exposed function
//!
//! "Paid" means the work is linear in the size of values the script has already
//! allocated under the memory limit (or in the result, allocated before the work starts).
//!
//! | Function | Why it is bounded |
//! |---|---|
//! | `assert`, `error`, `rawequal`, `rawget`, `rawset`, `rawlen`, `type`, `select`, `next`, `ipairs` (each step), `pairs` | O(1) per call (`rawlen`/`#` find a border by binary search); `select` returns at most the arguments it was given (paid) |
//! | `tostring`, `tonumber` | linear in one paid string; `__tostring`/`__name` run as hooked calls |
//! | `pcall`, `xpcall` | call a function (hooked); `xpcall` is `pcall` plus a hooked handler call |
//! | `setmetatable`, `getmetatable` | Lua (`lua/metatable.lua`): a copy of at most 27 fields; weak-keys-only tables (ephemerons, which the collector may traverse in quadratic time in one step) are refused |
//! | `load` | text only, at most [`MAX_LOAD_CHUNK`] bytes: the compiler runs in one C call |
//! | `print` | does nothing |
//! | `collectgarbage` | only `"count"`; collection steps are paid by allocation |
//! | `table.insert`, `remove`, `move`, `concat`, `unpack`, `sort` | Lua ports of ltablib.c (`lua/table.lua`): every loop step is hooked; the C `concat`/`unpack` only finish over a fresh table of checked values (paid; `unpack` at most LUAI_MAXSTACK values) |
//! | `table.pack` | builds a table of its arguments (paid) |
//! | `string.find`, `match`, `gmatch`, `gsub` | Rust port of Lua's matcher (`pattern`), charging every step and checking the deadline; `gsub` output moves into Lua strings in 64 KiB chunks (memory limit) |
//! | `string.rep` | Lua guard (`lua/text.lua`): an empty result returns at once; otherwise every repetition copies a byte of a result allocated first (paid) |
//! | `string.len`, `sub`, `upper`, `lower`, `reverse`, `byte`, `char` | linear in a paid string or in their arguments; `byte` returns at most LUAI_MAXSTACK values |
//! | `string.format` | linear in the format (paid); each directive formats one argument; `%s` calls `__tostring` (hooked) |
//! | `string.pack`, `unpack`, `packsize` | linear in the format and data (paid); sizes are checked against the data or allocated first |
//! | `utf8.char`, `charpattern`, `codepoint`, `len`, `offset`, `codes` (each step) | linear in a paid string or their arguments; `codepoint` returns at most LUAI_MAXSTACK values |
//! | `math.*` | O(1), or linear in the arguments (`max`, `min`; numbers only) |
//! | `coroutine.create`, `resume`, `wrap` | Lua guards (`lua/coroutine.lua`): refuse to start or resume any coroutine once the budget is spent; the coroutine body is hooked |
//! | `coroutine.yield`, `status`, `running`, `isyieldable`, `close` | O(1); `close` runs no `__close` (none can exist) |
//! | `os.time`, `clock`, `difftime` | O(1); `time` reads at most 7 fields (each a hooked call if `__index` is a function) |
//! | `os.date` | format at most [`MAX_DATE_FORMAT`] bytes (each conversion calls `strftime`) |
//! | VM operators on long strings (`..`, `<`, `==`, `#`) | one instruction's work is paid; at most [`HOOK_PERIOD`] of them run between two checks |
//! | The `pipeline` DSL (Rust) | O(1) per call |
//!
//! The sandbox's own Lua chunks are compiled once per process (`chunk`).

mod chunk;
mod clock;
mod libs;
mod pattern;
mod strlib;

use std::time::Duration;

use mlua::chunk::ChunkMode;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value};

use chunk::Chunk;
pub use clock::Clock;
pub use libs::MAX_DATE_FORMAT;

/// The longest text chunk `load` compiles. The compiler runs inside one C call, where no
/// hook fires; this bounds that call to milliseconds.
pub const MAX_LOAD_CHUNK: usize = 1024 * 1024;

/// Resource limits for one Lua state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most memory the Lua state may allocate, in bytes.
    pub memory: usize,
    /// The longest a single evaluation may run.
    pub time: Duration,
}

impl Limits {
    /// Limits for evaluating a pipeline definition: generous for any real pipeline, small
    /// enough that a hostile one cannot hurt the server validating it.
    pub const DEFINITION: Limits = Limits { memory: 64 * 1024 * 1024, time: Duration::from_secs(2) };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFINITION
    }
}

/// How many VM instructions run between two deadline checks. Some single instructions
/// do work proportional to a long string (comparing or concatenating two of them), so
/// the period is short: a hundred such instructions over the longest strings the memory
/// limit allows take a fraction of a second. The hook also fires on every function call,
/// so no C function starts once the budget is spent.
pub const HOOK_PERIOD: u32 = 100;

/// The error message of a script stopped by its time budget.
pub const TIME_BUDGET_EXCEEDED: &str = "script exceeded its time budget";

/// Creates a sandboxed Lua state with `limits` armed but no deadline running yet; call
/// [`Clock::arm`] (through [`clock`]) before each evaluation.
pub fn new_state(limits: Limits) -> mlua::Result<Lua> {
    let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::UTF8 | StdLib::COROUTINE | StdLib::OS;
    let lua = Lua::new_with(libs, LuaOptions::default())?;
    lua.set_memory_limit(limits.memory)?;
    let clock = Clock::new(limits.time);
    lua.set_app_data(clock.clone());
    install_hook(&lua, clock, HOOK_PERIOD)?;
    restrict_globals(&lua)?;
    strlib::install(&lua)?;
    libs::install(&lua)?;
    Ok(lua)
}

/// The deadline clock of a state made by [`new_state`].
pub fn clock(lua: &Lua) -> Clock {
    lua.app_data_ref::<Clock>().map(|c| c.clone()).unwrap_or_else(|| Clock::new(Limits::DEFINITION.time))
}

/// Fails with [`TIME_BUDGET_EXCEEDED`] when the state's deadline has passed. Long-running
/// Rust functions called from Lua call this as they work.
pub fn check_deadline(lua: &Lua) -> mlua::Result<()> {
    match lua.app_data_ref::<Clock>() {
        Some(clock) if clock.expired() => Err(budget_error(&clock)),
        _ => Ok(()),
    }
}

fn budget_error(clock: &Clock) -> mlua::Error {
    mlua::Error::runtime(format!("{TIME_BUDGET_EXCEEDED} of {:?}", clock.budget()))
}

/// Installs the deadline hook. Once the deadline has passed the hook re-installs itself
/// to fire on every instruction, so a script that catches the error with `pcall` fails
/// again at its very next instruction instead of looping on.
fn install_hook(lua: &Lua, clock: Clock, period: u32) -> mlua::Result<()> {
    let triggers = HookTriggers::new().on_calls().every_nth_instruction(period);
    lua.set_global_hook(triggers, move |lua, debug| {
        if !clock.expired() {
            return Ok(mlua::VmState::Continue);
        }
        if period != 1 {
            install_hook(lua, clock.clone(), 1)?;
        }
        // Name the place like Lua's own errors do (`file:line: message`).
        let source = debug.source();
        let place = match (source.short_src, debug.current_line()) {
            (Some(file), Some(line)) => format!("{file}:{line}: "),
            _ => String::new(),
        };
        Err(mlua::Error::runtime(format!("{place}{TIME_BUDGET_EXCEEDED} of {:?}", clock.budget())))
    })
}

/// Re-arms a state for a new evaluation: a fresh deadline and the normal hook period.
pub fn arm(lua: &Lua) -> mlua::Result<()> {
    let clock = clock(lua);
    clock.arm();
    install_hook(lua, clock, HOOK_PERIOD)
}

/// `xpcall` rebuilt on `pcall` (see `restrict_globals`).
static XPCALL: Chunk = Chunk::new(
    "=sandbox",
    r#"
    local pcall, select, table_pack, table_unpack = pcall, select, table.pack, table.unpack
    return function(f, handler, ...)
        local result = table_pack(pcall(f, ...))
        if result[1] then
            return table_unpack(result, 1, result.n)
        end
        return false, handler(result[2])
    end
    "#,
);

fn restrict_globals(lua: &Lua) -> mlua::Result<()> {
    let globals = lua.globals();
    for name in ["dofile", "loadfile", "require", "io", "debug", "package", "print"] {
        globals.raw_set(name, Value::Nil)?;
    }

    // `os`: only the functions that read the clock.
    let os: Table = globals.get("os")?;
    let safe_os = lua.create_table()?;
    for name in ["time", "clock", "date", "difftime"] {
        safe_os.raw_set(name, os.get::<Value>(name)?)?;
    }
    globals.raw_set("os", safe_os)?;

    let string: Table = globals.get("string")?;
    string.raw_set("dump", Value::Nil)?;

    globals.raw_set("print", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    globals.raw_set("load", lua.create_function(safe_load)?)?;
    globals.raw_set("collectgarbage", lua.create_function(safe_collectgarbage)?)?;

    // `xpcall` runs its message handler inside the error machinery with hooks off; this
    // version unwinds with `pcall` first and calls the handler afterwards, hooks on.
    let xpcall: Function = XPCALL.load(lua)?.call(())?;
    globals.raw_set("xpcall", xpcall)?;
    Ok(())
}

/// `load` for text chunks only: binary chunks could break the VM.
fn safe_load(
    lua: &Lua,
    (chunk, name, _mode, env): (Value, Option<String>, Option<String>, Option<Table>),
) -> mlua::Result<MultiValue> {
    let source = match chunk {
        Value::String(s) => s.as_bytes().to_vec(),
        other => {
            return Err(mlua::Error::runtime(format!(
                "load: only text chunks are allowed in the sandbox, got a {}",
                other.type_name()
            )));
        }
    };
    if source.len() > MAX_LOAD_CHUNK {
        return Err(mlua::Error::runtime(format!(
            "load: a chunk of {} bytes exceeds the sandbox's limit of {MAX_LOAD_CHUNK} bytes for a chunk",
            source.len()
        )));
    }
    if source.first() == Some(&0x1b) {
        return (Value::Nil, "load: binary chunks are not allowed in the sandbox").into_lua_multi(lua);
    }
    let mut chunk = lua.load(source).set_mode(ChunkMode::Text).set_name(name.unwrap_or_else(|| "=(load)".into()));
    if let Some(env) = env {
        chunk = chunk.set_environment(env);
    }
    match chunk.into_function() {
        Ok(function) => function.into_lua_multi(lua),
        Err(err) => (Value::Nil, err.to_string()).into_lua_multi(lua),
    }
}

fn safe_collectgarbage(lua: &Lua, option: Option<String>) -> mlua::Result<f64> {
    match option.as_deref().unwrap_or("collect") {
        "count" => Ok(lua.used_memory() as f64 / 1024.0),
        other => Err(mlua::Error::runtime(format!("collectgarbage('{other}') is not allowed in the sandbox"))),
    }
}

use mlua::IntoLuaMulti;
