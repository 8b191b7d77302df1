-- Builds the same small project for several targets with the builder API. The stages come
-- from a Lua function, as a larger pipeline would factor its repeated parts, and the last
-- stage nests a second container: `container.with` makes the image without a shell the
-- current container for the processes run inside it.
local IMAGE = "localhost/rivet-test:latest"
local TARGETS = { "linux-amd64", "linux-arm64" }

---Makes the stage that builds one target into /workspace/out/<target>.
---@param target string
---@return rivet.StageSpec
local function build_stage(target)
    return pipeline.stage({
        name = "build-" .. target,
        container = IMAGE,
        timeout = 120,
        script = function()
            local dir = "/workspace/out/" .. target
            process.run({ cmd = "mkdir", args = { "-p", dir } })
            local res = process.run({
                cmd = "sh",
                args = { "-c", 'echo "app for $TARGET, built with $JOBS jobs" > app.txt' },
                cwd = dir,
                env = { TARGET = target, JOBS = input.get("jobs", "2") },
            })
            if res.exit_code ~= 0 then
                error("build for " .. target .. " failed with exit code " .. res.exit_code)
            end
            output.set("artifact-" .. target, dir .. "/app.txt")
        end,
    })
end

local builder = pipeline.builder()
    :name("Multi-target build")
    :description("Builds one artifact per target and checksums them all")
    :input("jobs", pipeline.input("jobs", {
        type = "number",
        description = "Parallel jobs per build",
        default = 2,
        options = { 1, 2, 4 },
    }))
    :tag(pipeline.tag("os", "linux"))

for _, target in ipairs(TARGETS) do
    builder = builder:stage(build_stage(target))
end

return builder
    :stage({
        name = "checksums",
        container = IMAGE,
        script = function()
            local files = {}
            for _, target in ipairs(TARGETS) do
                files[#files + 1] = output.get("artifact-" .. target) or error("no artifact for " .. target)
            end
            -- The image without a shell runs busybox by its path; no `sh -c` is needed.
            local res = container.with("localhost/rivet-noshell:latest", function()
                return process.run({
                    cmd = "/bin/busybox",
                    args = { "sha256sum", table.unpack(files) },
                    capture_stdout = true,
                })
            end)
            if res.exit_code ~= 0 then
                error("sha256sum failed with exit code " .. res.exit_code)
            end
            log.info("checksums:\n" .. res.stdout)
            output.set("checksums", res.stdout)
        end,
    })
    :build()
