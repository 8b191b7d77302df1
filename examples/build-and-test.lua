return pipeline.define({
    name = "Build and Test",
    description = "Builds the project and runs tests",
    
    inputs = {
        branch = {
            type = "string",
            description = "Git branch to build",
            default = "main"
        },
        parallel_jobs = {
            type = "number",
            description = "Number of parallel jobs",
            default = 4,
            options = { 1, 2, 4, 8, 16 }
        },
        skip_tests = {
            type = "bool",
            description = "Skip test stage",
            default = false,
            required = false
        }
    },
    
    runner = {
        { key = "os", value = "linux" },
        { key = "arch", value = "x86_64" }
    },
    
    stages = {
        {
            name = "build",
            container = "rust:latest",
            script = function()
                log.info("Building project...")
                local jobs = input.get("parallel_jobs", "4")
                log.info("Using " .. jobs .. " parallel jobs")
            end
        },
        {
            name = "test",
            container = "rust:latest",
            condition = function()
                return input.get("skip_tests") ~= "true"
            end,
            script = function()
                log.info("Running tests...")
            end
        }
    }
})
