//! `fault.block(seconds)`: only in builds with the `fault-injection` feature, which the
//! runner's own tests turn on. It blocks the job's thread inside one Rust call for
//! `seconds`, without returning to Lua and without yielding to the thread's runtime, the
//! way a C function that loops without running a VM instruction would. No hook fires and
//! no stop is noticed meanwhile: it is how the tests prove that the supervisor ends a job
//! whatever its thread does.

use std::time::Duration;

use mlua::Lua;

pub(super) fn install(lua: &Lua) -> mlua::Result<()> {
    let fault = lua.create_table()?;
    fault.raw_set(
        "block",
        lua.create_function(|_, seconds: f64| {
            std::thread::sleep(Duration::from_secs_f64(seconds.clamp(0.0, 3600.0)));
            Ok(())
        })?,
    )?;
    lua.globals().raw_set("fault", fault)
}
