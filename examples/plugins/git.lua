-- The `git` plugin: clones and checks out repositories into the job's workspace.
--
-- Publish it with `rivet plugin publish examples/plugins/git.lua --name git --version 1.0.0`
-- and name it in a pipeline (`plugins = { "git@1.0.0" }`); `require("git")` inside a stage
-- returns this module. Every git command runs through `process.run` in an image that has
-- git (`image`, by default localhost/rivet-git:latest, from deploy/test-image/build-git.sh),
-- in its own container with the workspace at /workspace: the plugin reaches nothing the
-- pipeline could not.

local git = {}

---The image git runs in.
git.image = "localhost/rivet-git:latest"

---Runs `git ARGS...` in the workspace and returns its standard output; raises when git
---fails.
---@param args string[]
---@param cwd? string
---@return string
function git.run(args, cwd)
    local full = { "-c", "advice.detachedHead=false", "-c", "init.defaultBranch=main" }
    for _, arg in ipairs(args) do
        full[#full + 1] = arg
    end
    local result = container.with(git.image, function()
        return process.run({ cmd = "git", args = full, cwd = cwd, capture_stdout = true, stderr_level = "info" })
    end)
    if result.exit_code ~= 0 then
        error(string.format("git %s exited with %d", args[1] or "", result.exit_code), 2)
    end
    return (result.stdout:gsub("%s+$", ""))
end

---Clones `opts.url` into `opts.dir` (relative to the workspace) and checks out `opts.ref`
---(a branch, tag or commit) when given. Returns the commit checked out.
---@param opts { url: string, dir: string, ref?: string, depth?: integer }
---@return string commit
function git.clone(opts)
    assert(type(opts) == "table" and type(opts.url) == "string" and type(opts.dir) == "string",
        "git.clone{ url = ..., dir = ... }")
    if fs.exists(opts.dir) then
        error("git.clone: `" .. opts.dir .. "` already exists in the workspace", 2)
    end
    local args = { "clone", "--quiet", "--no-checkout" }
    if opts.depth then
        args[#args + 1] = "--depth=" .. tostring(opts.depth)
    end
    args[#args + 1] = "--"
    args[#args + 1] = opts.url
    args[#args + 1] = opts.dir
    git.run(args)
    return git.checkout(opts.dir, opts.ref or "HEAD")
end

---Checks out `ref` in the repository at `dir`; returns the commit.
---@param dir string
---@param ref string
---@return string commit
function git.checkout(dir, ref)
    git.run({ "checkout", "--quiet", ref, "--" }, dir)
    return git.run({ "rev-parse", "HEAD" }, dir)
end

return git
