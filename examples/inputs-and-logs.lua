-- Shows how a stage reads its inputs and controls its log: typed accessors for typed
-- inputs, the string view of all of them, captured output, and the level each stream of
-- a process is logged at. A failing command is handled instead of failing the stage.
return pipeline.define({
    name = "Inputs and logs",
    description = "Reads typed inputs and runs commands with chosen log levels",
    inputs = {
        greeting = { type = "string", description = "What to say", default = "hello" },
        repeat_count = { type = "number", description = "How many times to say it", default = 2 },
        verbose = { type = "bool", description = "Log debug details", default = false },
        ticket = { type = "string", description = "Optional ticket id", required = false },
    },
    stages = {
        {
            name = "report",
            container = "localhost/rivet-test:latest",
            script = function()
                -- Every input, as the strings a job was started with (after defaults).
                for _, name in ipairs(input.keys()) do
                    log.debug(name .. " = " .. input.all()[name])
                end
                if input.has("ticket") then
                    log.info("working on ticket " .. input.string("ticket"))
                end

                local count = input.number("repeat_count")
                for i = 1, math.floor(count) do
                    process.run({ cmd = "echo", args = { input.string("greeting") .. " #" .. i } })
                end

                local verbose = input.bool("verbose")
                local res = process.run({
                    cmd = "ls",
                    args = { "-l", "/workspace", "/does-not-exist" },
                    capture_stderr = true,
                    stdout_level = verbose and "info" or "debug",
                    stderr_level = "debug",
                })
                if res.exit_code ~= 0 then
                    -- ls exits 1 for the missing path; report it and carry on.
                    log.warning("ls exited " .. res.exit_code .. ": " .. res.stderr)
                end
            end,
        },
    },
})
