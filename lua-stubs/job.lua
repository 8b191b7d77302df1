---@meta job

-- Annotation stubs for Rivet's `job` module, available while a job runs: which job this
-- is, and what started it (an API call, a forge webhook through a trigger, a schedule, or
-- a rerun of another job).

---The running job.
---@class (exact) job
job = {}

---What started a job. `kind` says which; the other fields are those of that kind.
---@class (exact) job.Origin
---@field kind "api"|"trigger"|"schedule"|"rerun"
---@field caller? string Who called LaunchJob (kind `api`, when authenticated).
---@field trigger_id? string The trigger (kind `trigger`).
---@field delivery_id? string The forge's delivery id (kind `trigger`).
---@field event? "push"|"tag"|"pull_request" The forge event (kind `trigger`).
---@field sha? string The commit (kind `trigger`).
---@field ref? string The full ref, e.g. `refs/heads/main` (kind `trigger`).
---@field schedule_id? string The schedule (kind `schedule`).
---@field due? string The due time that fired, RFC 3339 (kind `schedule`).
---@field of? string The job this one reruns (kind `rerun`).

---The job's id (a UUID).
---@return string
function job.id() end

---The attempt, from 1: a job requeued after its runner was lost runs again with the next.
---@return integer
function job.attempt() end

---What started the job, e.g. `if job.origin().kind == "schedule" then ... end`.
---@return job.Origin
function job.origin() end
