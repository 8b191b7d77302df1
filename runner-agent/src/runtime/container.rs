//! `container.with(image, fn)`: runs `fn` with `image` on top of the stage's container
//! stack, so the processes `fn` runs use that image, and returns what `fn` returns. The
//! image is pulled when the call starts (if the host lacks it); the stack is popped when `fn`
//! returns, raises, or the job is stopped. Processes are containers of their own, removed
//! when each ends, so nothing else is left to remove when `fn` ends.

use std::sync::Arc;

use mlua::{Function, Lua, MultiValue};

use super::{call_driven, check_driven, on_host};
use crate::executor::context::JobContext;
use crate::executor::podman::ensure_image;

pub(super) fn install(lua: &Lua, ctx: &Arc<JobContext>) -> mlua::Result<()> {
    let container = lua.create_table()?;
    let c = ctx.clone();
    container.raw_set(
        "with",
        lua.create_async_function(move |lua, (image, body): (String, Function)| {
            let ctx = c.clone();
            async move {
                check_driven(&ctx, &lua, "container.with")?;
                {
                    let _waiting = ctx.budget.suspended(&lua);
                    on_host(&ctx, ensure_image(ctx.clone(), image.clone(), ctx.stage())).await?;
                }
                ctx.push_image(&image);
                let _pop = PopOnDrop(ctx.clone());
                call_driven::<MultiValue>(&ctx, &lua, body, ()).await
            }
        })?,
    )?;
    lua.globals().raw_set("container", container)
}

/// Pops the container stack when `fn` ends, however it ends.
struct PopOnDrop(Arc<JobContext>);

impl Drop for PopOnDrop {
    fn drop(&mut self) {
        self.0.pop_image();
    }
}
