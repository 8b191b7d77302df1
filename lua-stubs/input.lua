---@meta input

-- Annotation stubs for Rivet's `input` module, available while a job runs. It reads the
-- job's inputs after validation and defaults. The untyped accessors return strings (a
-- bool input reads as `"true"` or `"false"`, a number as its decimal text); the typed
-- accessors convert, and raise an error when the input is missing or not of that type.

---Read-only access to the job's inputs.
---@class (exact) input
input = {}

---Returns an input as a string, or `default` when the job does not have it (nil when
---there is no default either).
---@overload fun(name: string, default: string): string
---@param name string
---@param default? string
---@return string|nil
function input.get(name, default) end

---Returns an input as a string; raises an error when the job does not have it.
---@param name string
---@return string
function input.require(name) end

---Tells whether the job has the input (set by the job or by a default).
---@param name string
---@return boolean
function input.has(name) end

---Returns every input the job has, as strings, by name.
---@return table<string, string>
function input.all() end

---Returns the names of the job's inputs, sorted.
---@return string[]
function input.keys() end

---Returns a `string` input; raises an error when it is missing.
---@param name string
---@return string
function input.string(name) end

---Returns a `number` input as a number; raises an error when it is missing or not a number.
---@param name string
---@return number
function input.number(name) end

---Returns a `bool` input as a boolean; raises an error when it is missing or not a bool.
---@param name string
---@return boolean
function input.bool(name) end
