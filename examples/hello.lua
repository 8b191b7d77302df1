-- The smallest pipeline: one stage in the local test image (`just test-image` builds it).
-- Run it with `rivet run examples/hello.lua`.
return pipeline.define({
    name = "hello",
    description = "Says hello from a container",
    stages = {
        {
            name = "hello",
            container = "localhost/rivet-test:latest",
            script = function()
                log.info("Hello from a Rivet stage")
                process.run({ cmd = "echo", args = { "hello from rivet" } })
            end,
        },
    },
})
