-- Checks out a repository with the `git` plugin and builds it in a container.
--
-- The repository is a bare one the first stage makes in the workspace (no registry or
-- forge is reachable from the tests); in real use `upstream` is a URL. Needs the plugins
-- published (`rivet plugin publish examples/plugins/git.lua --name git --version 1.0.0`)
-- and the images of deploy/test-image/build.sh and build-git.sh.
local BUSYBOX = "localhost/rivet-test:latest"

return pipeline.define({
    name = "git-build",
    description = "Clones a repository with the git plugin and builds it",
    plugins = { "git" },
    inputs = {
        upstream = { type = "string", description = "The repository to build", default = "/workspace/upstream.git" },
        ref = { type = "string", description = "The branch, tag or commit to build", default = "v1" },
    },
    stages = {
        {
            name = "upstream",
            container = BUSYBOX,
            script = function()
                local git = require("git")
                -- A small project: a build script and its input, committed and tagged.
                fs.mkdir("seed")
                fs.write("seed/build.sh", "mkdir -p out\nsed 's/^/built: /' greeting.txt > out/result.txt\n")
                fs.write("seed/greeting.txt", "hello from v1\n")
                git.run({ "init", "--quiet", "--bare", "upstream.git" })
                git.run({ "init", "--quiet" }, "seed")
                git.run({ "add", "." }, "seed")
                git.run({ "-c", "user.name=rivet", "-c", "user.email=rivet@example.invalid", "commit", "--quiet",
                    "-m", "v1" }, "seed")
                git.run({ "tag", "v1" }, "seed")
                fs.write("seed/greeting.txt", "hello from main\n")
                git.run({ "-c", "user.name=rivet", "-c", "user.email=rivet@example.invalid", "commit", "--quiet",
                    "-am", "main" }, "seed")
                git.run({ "push", "--quiet", "../upstream.git", "HEAD:refs/heads/main", "v1" }, "seed")
                fs.remove("seed")
            end,
        },
        {
            name = "checkout",
            container = BUSYBOX,
            script = function()
                local git = require("git")
                local commit = git.clone({ url = input.get("upstream", ""), dir = "src", ref = input.get("ref", "v1") })
                log.info("checked out " .. commit)
                output.set("commit", commit)
            end,
        },
        {
            name = "build",
            container = BUSYBOX,
            script = function()
                local result = process.run({ cmd = "sh", args = { "build.sh" }, cwd = "src" })
                if result.exit_code ~= 0 then
                    error("the build failed with exit code " .. result.exit_code)
                end
                local built = fs.read("src/out/result.txt")
                log.info(built:gsub("%s+$", ""))
                output.set("result", (built:gsub("%s+$", "")))
            end,
        },
    },
})
