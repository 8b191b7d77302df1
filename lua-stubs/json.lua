---@meta json

-- Annotation stubs for Rivet's `json` module, available while a job runs. Tables whose keys
-- are exactly 1..n become arrays, others objects (string keys only); `{}` becomes `{}`.
-- At most 100 levels of nesting and 16 MiB of text either way.

---JSON text.
---@class (exact) json
---@field null lightuserdata JSON's `null`, as `json.decode` returns it and `json.encode` takes it.
json = {}

---Encodes a value (tables, strings, numbers, booleans, `json.null`) as JSON text.
---@param value any
---@return string
function json.encode(value) end

---Decodes JSON text; `null` becomes `json.null`.
---@param text string
---@return any
function json.decode(text) end
