---@meta git

-- Annotation stubs for the `git` plugin (examples/plugins/git.lua), which a pipeline loads
-- with `local git = require("git")` inside a stage once it names it in `plugins`.

---Clones and checks out repositories into the workspace.
---@class (exact) rivet.plugins.git
---@field image string The image git runs in (localhost/rivet-git:latest by default).
local git = {}

---Runs `git ARGS...` (in `cwd`, relative to the workspace) and returns its standard output.
---@param args string[]
---@param cwd? string
---@return string
function git.run(args, cwd) end

---Clones `url` into `dir` and checks out `ref` (default `HEAD`); returns the commit.
---@param opts { url: string, dir: string, ref?: string, depth?: integer }
---@return string commit
function git.clone(opts) end

---Checks out `ref` in the repository at `dir`; returns the commit.
---@param dir string
---@param ref string
---@return string commit
function git.checkout(dir, ref) end

return git
