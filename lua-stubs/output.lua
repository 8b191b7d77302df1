---@meta output

-- Annotation stubs for Rivet's `output` module, available while a job runs. Outputs are
-- the job's results: a later stage reads what an earlier one set, and they are stored with
-- the job when it ends.

---Key/value results of the job.
---@class (exact) output
output = {}

---Sets an output. Numbers and booleans are stored as their text (`42`, `"true"`).
---@param key string
---@param value string|number|boolean
function output.set(key, value) end

---Returns an output set earlier in the job, or nil.
---@param key string
---@return string|nil
function output.get(key) end
