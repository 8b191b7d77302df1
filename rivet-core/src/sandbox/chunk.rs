//! Lua code the sandbox itself runs, compiled once per process.
//!
//! Every sandbox state loads the same library chunks (`lua/*.lua` and a few wrappers).
//! Compiling them costs more than the rest of creating a state, so each is compiled once,
//! in a private state, and later states load its bytecode. Loading bytecode is safe here
//! because it is our own, made by the same Lua in the same process; scripts still cannot
//! load binary chunks (see `safe_load`).

use std::sync::OnceLock;

use mlua::chunk::ChunkMode;
use mlua::{Function, Lua, LuaOptions, StdLib};

/// A chunk of the sandbox's own Lua code.
pub(crate) struct Chunk {
    /// The name in error messages and tracebacks, as `load` takes it (`=name`).
    name: &'static str,
    source: &'static str,
    bytecode: OnceLock<Vec<u8>>,
}

impl Chunk {
    pub(crate) const fn new(name: &'static str, source: &'static str) -> Self {
        Chunk { name, source, bytecode: OnceLock::new() }
    }

    /// The chunk as a function of `lua`.
    pub(crate) fn load(&self, lua: &Lua) -> mlua::Result<Function> {
        let bytecode = match self.bytecode.get() {
            Some(bytecode) => bytecode,
            None => {
                let compiler = Lua::new_with(StdLib::NONE, LuaOptions::default())?;
                let function = compiler.load(self.source).set_name(self.name).into_function()?;
                // Keep debug information: it names our lines in tracebacks.
                self.bytecode.get_or_init(|| function.dump(false))
            }
        };
        lua.load(&bytecode[..]).set_name(self.name).set_mode(ChunkMode::Binary).into_function()
    }
}
