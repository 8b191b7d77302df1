---@meta secret

-- Annotation stubs for Rivet's `secret` module, available while a job runs. It returns
-- the values of the secrets the pipeline declares (`secrets = { "DEPLOY_TOKEN" }` or
-- `:secret("DEPLOY_TOKEN")`), set with `rivet secret set`. Only declared secrets reach the
-- runner. Every form of a value (as is, base64, hex, URL-encoded, split across lines) is
-- masked as `***` in the job's log, messages and outputs.

---The secrets the pipeline declares.
---@class (exact) secret
secret = {}

---Returns the value of the declared secret `name`, e.g. for
---`process.run{ cmd = "deploy", env = { TOKEN = secret.get("DEPLOY_TOKEN") } }`. Raises an
---error naming it when the pipeline does not declare `name`.
---@param name string
---@return string
function secret.get(name) end
