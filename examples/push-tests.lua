-- Runs a repository's tests on every push: a trigger (`rivet trigger create --forge gitea
-- --repository demo/app --pipeline push-tests`) maps each push event to these inputs, and
-- the stage checks out exactly the pushed commit and runs `./run-tests.sh` in a container
-- with git. examples/webhooks/post-receive makes any bare repository send the webhook.
local GIT = "localhost/rivet-git:latest"

return pipeline.define({
    name = "push-tests",
    description = "Checks out the pushed commit and runs its tests",
    inputs = {
        clone_url = { type = "string", required = true, description = "Where to clone from (the event's)" },
        sha = { type = "string", required = true, description = "The pushed commit" },
        ref = { type = "string", default = "", description = "The pushed ref" },
        repository = { type = "string", default = "", description = "owner/name" },
    },
    stages = {
        {
            name = "test",
            container = GIT,
            script = function()
                local sha = input.require("sha")
                log.info("testing " .. input.get("repository", "") .. " " .. input.get("ref", "") .. " at " .. sha)
                local origin = job.origin()
                if origin.kind == "trigger" then
                    log.info("started by webhook delivery " .. (origin.delivery_id or "?"))
                end
                local function git(args, cwd)
                    local result = process.run({ cmd = "git", args = args, cwd = cwd })
                    if result.exit_code ~= 0 then
                        error("git " .. args[1] .. " failed with exit code " .. result.exit_code)
                    end
                end
                git({ "clone", "--quiet", input.require("clone_url"), "src" })
                git({ "-c", "advice.detachedHead=false", "checkout", "--quiet", sha }, "src")
                local tests = process.run({ cmd = "sh", args = { "./run-tests.sh" }, cwd = "src" })
                if tests.exit_code ~= 0 then
                    error("the tests failed (exit code " .. tests.exit_code .. ")")
                end
                output.set("tested", sha)
            end,
        },
    },
})
