---@meta container

-- Annotation stubs for Rivet's `container` module, available while a job runs.

---Chooses the container that processes run in.
---@class (exact) container
container = {}

---Runs `fn` with `image` as the current container, and returns what `fn` returns. Calls
---nest like a stack: `process.run` uses the innermost container, and the previous one is
---current again when `fn` returns or raises. The image is pulled when the call starts if the
---runner does not have it (an image that cannot be pulled fails the stage with reason
---`image_pull`). Each process then runs in a fresh container of the image that gets the
---job's workspace at `/workspace` and is removed when the process ends, so only files under
---`/workspace` carry over from one process to the next. Call it from the stage's function,
---not from inside a coroutine.
---@generic T
---@param image string An image reference, such as `"alpine:3.20"`.
---@param fn fun(): T
---@return T
function container.with(image, fn) end
