//! `secret`: the values of the secrets the pipeline declared, for a stage to hand to a
//! process (`process.run{ env = { TOKEN = secret.get("DEPLOY_TOKEN") } }`). Only declared
//! secrets reached the runner; asking for another name is an error naming it. Every form
//! of a value is masked wherever the job's output goes (see `executor::mask`).

use std::sync::Arc;

use mlua::Lua;
use rivet_core::text::truncate;

use crate::executor::context::JobContext;

pub(super) fn install(lua: &Lua, ctx: &Arc<JobContext>) -> mlua::Result<()> {
    let secret = lua.create_table()?;
    let c = ctx.clone();
    secret.raw_set(
        "get",
        lua.create_function(move |lua, name: String| match c.secret(&name) {
            Some(value) => lua.create_string(value),
            None => Err(mlua::Error::runtime(format!(
                "secret `{}` is not declared by this pipeline: add it to the pipeline's `secrets = {{ ... }}` \
                     (or `:secret(...)`), and set it with `rivet secret set`",
                truncate(&name, 64)
            ))),
        })?,
    )?;
    lua.globals().raw_set("secret", secret)
}
