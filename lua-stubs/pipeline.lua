---@meta pipeline

-- Annotation stubs for Rivet's `pipeline` module: the definition API that a pipeline file
-- returns from. The definition is evaluated when the pipeline is created (by the
-- orchestrator and by `rivet pipeline check`), so everything here is validated before any
-- runner sees the pipeline. These files are for editors and `emmylua_check`; they are never
-- loaded by Rivet itself.

---The type of a pipeline input. Job parameters arrive as strings and are checked against it.
---@alias rivet.InputType
---| "string" # Any text.
---| "number" # A decimal number, such as `4` or `2.5`.
---| "bool"   # `true` or `false`.

---A value an input can take: its default or one of its options.
---@alias rivet.InputValue string|number|boolean

---A typed input that a job is started with.
---@class (exact) rivet.InputSpec
---@field type rivet.InputType The input's type; defaults and options must have it too.
---@field description? string Shown by `rivet` when it prompts for the input and in the UI.
---@field default? rivet.InputValue Used when the job does not set the input.
---@field options? rivet.InputValue[] The only values allowed (an enumeration).
---@field required? boolean The job must set the input (or it must have a default); false by default.

---A runner tag: a job runs only on a runner whose labels include every tag of its pipeline.
---@class (exact) rivet.Tag
---@field key string Label name, such as `"os"` or `"capability"`.
---@field value string Label value, such as `"linux"`.

---One stage of a pipeline. Stages run one after another, each in its own container.
---@class (exact) rivet.StageSpec
---@field name string Unique within the pipeline; shown in logs and status.
---@field container? string The image the stage's processes run in, such as `"rust:latest"`.
---@field condition? fun(): boolean Evaluated when the stage is reached; the stage is skipped when it returns false.
---@field script fun() The stage's body, run on the runner while the job runs.
---@field timeout? number|string Seconds (a number) or a duration such as `"10m"` or `"1h30m"`; the stage fails with reason `timeout` when it runs longer.
---@field network? "none"|"default" The network of the stage's containers: `"none"` (loopback only) or the runner's `"default"`; the runner's configured default when absent.

---The table given to `pipeline.define`.
---@class (exact) rivet.PipelineSpec
---@field name string The pipeline's name.
---@field description? string What the pipeline does.
---@field inputs? table<string, rivet.InputSpec> Typed inputs, by name.
---@field runner? rivet.Tag[] Tags a runner must carry to run the pipeline's jobs.
---@field plugins? string[] Lua plugins the pipeline may `require` inside a stage: `"git"` (its latest version when the pipeline is created), `"git@1.2.0"`, or `"git@sha256:<hex>"`. Creation pins each to its content, so later publishes do not change what this version runs.
---@field secrets? string[] Names of the secrets the pipeline's jobs receive; no other secret is delivered to them.
---@field http? rivet.HttpScope Narrows the runner's `http` policy for this pipeline.
---@field stages rivet.StageSpec[] The stages, in the order they run; at least one.

---What a pipeline's `http` calls may reach, within the runner's policy (both must allow a request).
---@class (exact) rivet.HttpScope
---@field hosts? string[] Host patterns: `"*"`, `"*.example.com"` or a host name.
---@field methods? ("GET"|"HEAD"|"POST"|"PUT"|"PATCH"|"DELETE"|"OPTIONS")[] The methods allowed.

---A validated pipeline definition. It is opaque: a pipeline file only returns it.
---@class rivet.Pipeline

---A fluent builder for a pipeline, made by `pipeline.builder()`. Every method returns the
---builder itself; `:build()` validates and returns the pipeline.
---@class (exact) rivet.Builder
local Builder = {}

---Sets the pipeline's name (required).
---@param name string
---@return rivet.Builder
function Builder:name(name) end

---Sets the pipeline's description.
---@param description string
---@return rivet.Builder
function Builder:description(description) end

---Declares a typed input.
---@param name string The input's name, as `input.get` reads it.
---@param spec rivet.InputSpec
---@return rivet.Builder
function Builder:input(name, spec) end

---Adds a runner tag the pipeline requires.
---@param tag rivet.Tag
---@return rivet.Builder
function Builder:tag(tag) end

---Allows the pipeline to `require` a Lua plugin.
---@param name string
---@return rivet.Builder
function Builder:plugin(name) end

---Declares a secret the pipeline's jobs receive.
---@param name string
---@return rivet.Builder
function Builder:secret(name) end

---Appends a stage; stages run in the order they are added.
---@param spec rivet.StageSpec
---@return rivet.Builder
function Builder:stage(spec) end

---Validates the definition and returns the pipeline. Errors name the file, line and field.
---@return rivet.Pipeline
function Builder:build() end

---The pipeline definition API.
---@class (exact) pipeline
pipeline = {}

---Validates a pipeline definition given as one table and returns the pipeline.
---Errors name the file, line and field.
---@param spec rivet.PipelineSpec
---@return rivet.Pipeline
function pipeline.define(spec) end

---Starts a fluent pipeline definition.
---@return rivet.Builder
function pipeline.builder() end

---Checks one input specification on its own and returns it unchanged, so inputs can be
---written as values (for instance in a loop) before being put in `inputs` or passed to
---`Builder:input`. `name` is used in error messages.
---@param name string
---@param spec rivet.InputSpec
---@return rivet.InputSpec
function pipeline.input(name, spec) end

---Checks one stage specification on its own and returns it unchanged, so stages can be
---made by functions and reused.
---@param spec rivet.StageSpec
---@return rivet.StageSpec
function pipeline.stage(spec) end

---Makes a runner tag: `pipeline.tag("os", "linux")` is `{ key = "os", value = "linux" }`.
---@param key string
---@param value string
---@return rivet.Tag
function pipeline.tag(key, value) end
