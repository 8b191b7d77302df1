---@meta container

-- Annotation stubs for Rivet's `container` module, available while a job runs.

---Chooses the container that processes run in.
---@class (exact) container
container = {}

---Runs `fn` with `image` as the current container, and returns what `fn` returns. Calls
---nest like a stack: `process.run` uses the innermost container, and the previous one is
---current again when `fn` returns or raises. The container is started on first use, gets
---the job's workspace at `/workspace`, and is removed when `fn` ends.
---@generic T
---@param image string An image reference, such as `"alpine:3.20"`.
---@param fn fun(): T
---@return T
function container.with(image, fn) end
