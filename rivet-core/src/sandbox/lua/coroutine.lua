-- `coroutine.create`, `coroutine.resume` and `coroutine.wrap` for the sandbox: once the
-- time budget is spent, no coroutine starts or runs again.
--
-- The budget's hook is per Lua thread: each coroutine counts its own instructions, so a
-- coroutine that catches its children's errors would run on for up to a hook period,
-- and a tree of such coroutines (each spawning more) would live on indefinitely. These
-- versions ask `expired` (which raises the budget's error) before creating or resuming
-- a coroutine; `wrap` returns a Lua function that does the same on every call, instead
-- of Lua's C function that resumes without asking.
local expired, create, resume, close, status, pack, unpack, args = ...
local error, select, type = error, select, type

local coroutine = {}

function coroutine.create(...)
    local f = ...
    if type(f) ~= "function" then args.typeerror("create", 1, f, select("#", ...) >= 1, "function", 2) end
    expired()
    return create(f)
end

function coroutine.resume(...)
    local co = ...
    if type(co) ~= "thread" then args.typeerror("resume", 1, co, select("#", ...) >= 1, "thread", 2) end
    expired()
    return resume(...)
end

function coroutine.wrap(...)
    local f = ...
    if type(f) ~= "function" then args.typeerror("wrap", 1, f, select("#", ...) >= 1, "function", 2) end
    expired()
    local co = create(f)
    -- What Lua's `auxwrap` does with the results of a resume: return them, or close a
    -- coroutine that died of an error and re-raise the error, with the caller's position
    -- in front when it is a string (memory errors excepted). `pack` and `unpack` are
    -- Lua's C functions, over a fresh table.
    return function(...)
        expired()
        local results = pack(resume(co, ...))
        if results[1] then return unpack(results, 2, results.n) end
        local err = results[2]
        if status(co) == "dead" then close(co) end
        if type(err) == "string" and err ~= "not enough memory" then error(err, 2) end
        error(err, 0)
    end
end

return coroutine
