return pipeline.builder()
    :name("Docker Build Pipeline")
    :description("Builds and pushes a Docker image")
    :input("image_name", {
        type = "string",
        description = "Docker image name",
        required = true
    })
    :input("push_image", {
        type = "bool",
        description = "Push to registry",
        default = true
    })
    :tag({ key = "capability", value = "docker" })
    :stage({
        name = "build",
        container = "docker:latest",
        script = function()
            log.info("Building image...")
        end
    })
    :build()
