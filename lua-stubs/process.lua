---@meta process

-- Annotation stubs for Rivet's `process` module, available while a job runs. Every process
-- runs in the current container: the innermost `container.with`, or else the stage's
-- `container`. Each process gets a fresh container of that image, removed when it ends; the
-- job's workspace, mounted at `/workspace`, is what processes share.

---A log level for a process's output streams.
---@alias rivet.LogLevel "debug"|"info"|"warning"|"error"

---What `process.run` runs, and how.
---@class (exact) rivet.ProcessOptions
---@field cmd string The program, looked up on the container's `PATH` unless it contains a `/`.
---@field args? string[] Its arguments, passed as they are (no shell).
---@field cwd? string The working directory: relative to `/workspace` (the default) or an absolute path under it; it must exist, and may not lead out of the workspace.
---@field env? table<string, string> Environment variables added for this process.
---@field capture_stdout? boolean Return standard output in the result's `stdout` instead of only logging it.
---@field capture_stderr? boolean Return standard error in the result's `stderr` instead of only logging it.
---@field stdout_level? rivet.LogLevel The level standard output is logged at; `"info"` by default.
---@field stderr_level? rivet.LogLevel The level standard error is logged at; `"warning"` by default.

---What a finished process gave back.
---@class (exact) rivet.ProcessResult
---@field exit_code integer The process's exit status.
---@field stdout string Its standard output when `capture_stdout` was set, else `""`.
---@field stderr string Its standard error when `capture_stderr` was set, else `""`.

---Runs processes in containers.
---@class (exact) process
process = {}

---Runs a process and waits for it; its output is logged line by line as it is produced.
---A non-zero exit code is returned, not raised: check `exit_code`, or call `error` to fail
---the stage. Raises an error when the options are wrong, when the program cannot be started
---(for example when the image does not have it), when the job is cancelled or times out,
---and when called from inside a coroutine.
---@param opts rivet.ProcessOptions
---@return rivet.ProcessResult
function process.run(opts) end
