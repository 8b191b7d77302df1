---@meta notify

-- Annotation stubs for the `notify` plugin (examples/plugins/notify.lua), which a pipeline
-- loads with `local notify = require("notify")` inside a stage once it names it in `plugins`.

---Job notifications.
---@class (exact) rivet.plugins.notify
local notify = {}

---Posts `{ text = message, ...fields }` as JSON to a webhook; returns the status. Raises
---when the request fails or the webhook answers 400 or more.
---@param url string
---@param message string
---@param fields? table<string, string|number|boolean>
---@param headers? table<string, string>
---@return integer status
function notify.webhook(url, message, fields, headers) end

return notify
