-- Passes results from one stage to the next with outputs, and publishes only on request.
--
-- `stamp` writes a version file into the job's workspace and sets two outputs, `verify`
-- reads them back and compares them with the file, and `publish` runs only when the job's
-- `publish` input is true. Every stage runs in its own container; the workspace
-- (/workspace) is shared between them.
local IMAGE = "localhost/rivet-test:latest"

---Runs a shell command and fails the stage when it exits non-zero.
---@param script string
---@param env? table<string, string>
---@return string stdout
local function sh(script, env)
    local res = process.run({ cmd = "sh", args = { "-c", script }, env = env, capture_stdout = true })
    if res.exit_code ~= 0 then
        error(string.format("`%s` exited with %d", script, res.exit_code))
    end
    return (res.stdout:gsub("%s+$", ""))
end

return pipeline.define({
    name = "Versioned release",
    description = "Stamps a build with a version, checks it, and publishes it on request",
    inputs = {
        version = { type = "string", description = "Version to release", default = "0.1.0" },
        channel = {
            type = "string",
            description = "Release channel",
            default = "beta",
            options = { "alpha", "beta", "stable" },
        },
        publish = { type = "bool", description = "Publish the artifact", default = false },
    },
    stages = {
        {
            name = "stamp",
            container = IMAGE,
            timeout = "2m",
            script = function()
                local version = input.require("version") .. "-" .. input.require("channel")
                local checksum = sh('mkdir -p dist && echo "$VERSION" > dist/VERSION && sha256sum dist/VERSION | cut -d" " -f1', {
                    VERSION = version,
                })
                output.set("version", version)
                output.set("checksum", checksum)
                log.info("stamped " .. version .. " (" .. checksum .. ")")
            end,
        },
        {
            name = "verify",
            container = IMAGE,
            timeout = 60,
            script = function()
                local expected = output.get("checksum")
                if expected == nil then
                    error("the stamp stage set no checksum")
                end
                local actual = sh('sha256sum dist/VERSION | cut -d" " -f1')
                if actual ~= expected then
                    error("dist/VERSION changed: " .. actual .. " ~= " .. expected)
                end
                log.info("dist/VERSION matches " .. expected)
            end,
        },
        {
            name = "publish",
            container = IMAGE,
            condition = function()
                return input.bool("publish")
            end,
            script = function()
                local version = output.get("version") or "unknown"
                log.warning("publishing " .. version .. " to channel " .. input.require("channel"))
                sh("mkdir -p published && cp dist/VERSION published/")
                output.set("published", true)
            end,
        },
    },
})
