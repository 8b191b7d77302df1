---@meta fs

-- Annotation stubs for Rivet's `fs` module, available while a job runs. Paths are relative
-- to the job's workspace (the directory containers see at `/workspace`; a path starting
-- with `/workspace/` is accepted too). Nothing outside it can be reached: `..` that climbs
-- out, other absolute paths, and symbolic links pointing out of the workspace are refused,
-- also when a container swaps a link in while a call runs. Errors name the path and why.

---Files in the job's workspace.
---@class (exact) fs
fs = {}

---Returns the contents of a regular file. Raises when it is missing, not a regular file, or
---larger than the runner's `executor.fs_max_read_bytes` (16 MiB by default).
---@param path string
---@return string
function fs.read(path) end

---Writes `data` to a file, replacing what it held; creates it when missing (its directory
---must exist). At most `executor.fs_max_write_bytes` (16 MiB by default) per call.
---@param path string
---@param data string|number|boolean
function fs.write(path, data) end

---Appends `data` to a file, creating it when missing.
---@param path string
---@param data string|number|boolean
function fs.append(path, data) end

---Whether something exists at `path` (links inside the workspace are followed).
---@param path string
---@return boolean
function fs.exists(path) end

---The names in a directory (the workspace itself by default), sorted; at most 10000.
---@param dir? string
---@return string[]
function fs.list(dir) end

---Creates a directory and its missing parents; an existing directory is fine.
---@param path string
function fs.mkdir(path) end

---Removes a file, a link (never what it points to) or a directory tree. Returns whether
---something was there.
---@param path string
---@return boolean
function fs.remove(path) end

---The workspace paths matching `pattern`, sorted: `*` and `?` match within one path
---component, `**` across them (`"**/*.txt"`), `[abc]` one of the characters. Links are
---listed, not followed. At most 10000 results.
---@param pattern string
---@return string[]
function fs.glob(pattern) end
