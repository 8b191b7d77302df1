-- The `notify` plugin: tells a webhook how a job went, with one JSON POST through the
-- `http` module (under the runner's http policy and the pipeline's `http` scope).
--
-- Publish it with `rivet plugin publish examples/plugins/notify.lua --name notify --version 1.0.0`.

local notify = {}

---Posts `message` (and any `fields`) as JSON to `url`; returns the response's status.
---Raises when the request fails or the webhook answers with a status of 400 or more.
---@param url string
---@param message string
---@param fields? table<string, string|number|boolean>
---@param headers? table<string, string>
---@return integer status
function notify.webhook(url, message, fields, headers)
    local payload = { text = message }
    for key, value in pairs(fields or {}) do
        payload[key] = value
    end
    local all = { ["content-type"] = "application/json" }
    for name, value in pairs(headers or {}) do
        all[name] = value
    end
    local response = http.post(url, json.encode(payload), { headers = all })
    if response.status >= 400 then
        error(string.format("notify.webhook: the webhook answered %d", response.status), 2)
    end
    return response.status
end

return notify
