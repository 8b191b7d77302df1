---@meta http

-- Annotation stubs for Rivet's `http` module, available while a job runs. Requests leave
-- from the runner host under the runner's `[executor.http]` policy, narrowed by the
-- pipeline's `http = { hosts = { ... }, methods = { ... } }`: allowed hosts (redirects
-- included), methods, body sizes and timeouts. Private, loopback and link-local addresses
-- are refused unless the runner allows them. A request waits on the host, so its time counts
-- against the stage's timeout, not its Lua time budget; it cannot be called from inside a
-- coroutine.

---What `http.request` sends.
---@class (exact) rivet.HttpRequest
---@field method? "GET"|"HEAD"|"POST"|"PUT"|"PATCH"|"DELETE"|"OPTIONS" `"GET"` by default.
---@field url string An `http://` or `https://` URL.
---@field headers? table<string, string> Request headers (at most 100, 64 KiB in all); their values never appear in errors or logs.
---@field body? string The request body.
---@field timeout? number Seconds the whole request may take; at most the runner's `executor.http.timeout_secs`, which is also the default.

---Options of `http.get` and `http.post`.
---@class (exact) rivet.HttpOptions
---@field headers? table<string, string> Request headers.
---@field timeout? number Seconds the whole request may take.

---What came back. Any status is a result, also 404 or 500.
---@class (exact) rivet.HttpResponse
---@field status integer The HTTP status code.
---@field headers table<string, string> Response headers by lower-case name (repeated ones joined with ", ").
---@field body string The response body.

---HTTP requests from the runner host, under its policy.
---@class (exact) http
http = {}

---Sends a request and reads the whole response. Raises when the policy refuses it (naming
---the rule), when it fails or times out, or when the response body is larger than the
---runner's `executor.http.max_response_body_bytes`.
---@param request rivet.HttpRequest
---@return rivet.HttpResponse
function http.request(request) end

---`http.request{ method = "GET", url = url, ... }`.
---@param url string
---@param opts? rivet.HttpOptions
---@return rivet.HttpResponse
function http.get(url, opts) end

---`http.request{ method = "POST", url = url, body = body, ... }`.
---@param url string
---@param body? string
---@param opts? rivet.HttpOptions
---@return rivet.HttpResponse
function http.post(url, body, opts) end
