---@meta log

-- Annotation stubs for Rivet's `log` module, available while a job runs. Every line is
-- stored with the job, streamed to followers, and has the job's secrets masked.

---Writes to the job's log.
---@class (exact) log
log = {}

---Logs a message at debug level (hidden unless the follower asks for debug output).
---@param msg string
function log.debug(msg) end

---Logs a message at info level.
---@param msg string
function log.info(msg) end

---Logs a message at warning level.
---@param msg string
function log.warning(msg) end

---Logs a message at error level. It does not fail the stage: raise a Lua `error` for that.
---@param msg string
function log.error(msg) end
