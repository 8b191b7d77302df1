-- `setmetatable` and `getmetatable` for the sandbox: no metatable a script can reach ever
-- holds `__gc` or `__close`.
--
-- Lua runs those two metamethods with hooks off in some paths (finalizers always; the
-- close handlers of a coroutine the time budget killed, when `coroutine.wrap` or
-- `coroutine.close` closes it), where the time budget cannot stop them. Checking the
-- metatable when it is set is not enough, since a script keeps a reference to its
-- metatable and can add `__close` afterwards. So `setmetatable` installs a private,
-- frozen copy of the script's metatable: the metamethods Lua looks up, without `__gc` and
-- `__close`. `getmetatable` still returns the script's own table (or its `__metatable`
-- field), and a later `setmetatable` replaces the copy as it would the original.
--
-- The one difference a script can see: a metamethod added to a metatable after
-- `setmetatable` takes effect on the next `setmetatable` with it, not at once. (Methods
-- looked up through an `__index` table are unaffected: that table is shared, not copied.)
local setmetatable, getmetatable, args = ...
local error, pcall, rawget, rawequal, select, type, find = error, pcall, rawget, rawequal, select, type, string.find

-- Every field Lua's VM and standard library read from a metatable, except `__gc` and
-- `__close`.
local FIELDS = {
    "__index", "__newindex", "__mode", "__len", "__eq", "__add", "__sub", "__mul", "__mod",
    "__pow", "__div", "__idiv", "__band", "__bor", "__bxor", "__shl", "__shr", "__unm",
    "__bnot", "__lt", "__le", "__concat", "__call", "__tostring", "__name", "__pairs",
    "__metatable",
}

-- Refused outright when present at `setmetatable`, and never copied.
local FORBIDDEN = { "__gc", "__close" }

-- The key under which a copy of an unprotected metatable keeps the script's metatable,
-- for `getmetatable`. Only this chunk holds it, and Lua reads metamethods by name, so a
-- script can neither see it nor confuse a table of its own with a copy.
local ORIGINAL = {}
-- The script's metatable -> its latest copy, reused while the metatable is unchanged, so
-- that a thousand objects of one class share one copy. Weak keys *and* values: a table
-- with only weak keys is an ephemeron table, which the collector may take quadratic time
-- to traverse, in one step no hook interrupts.
local latest = setmetatable({}, { __mode = "kv" })

local function copy_of(meta)
    local copy = latest[meta]
    if copy ~= nil then
        for i = 1, #FIELDS do
            local field = FIELDS[i]
            if not rawequal(rawget(copy, field), rawget(meta, field)) then
                copy = nil
                break
            end
        end
        if copy ~= nil then return copy end
    end
    copy = {}
    for i = 1, #FIELDS do
        local field = FIELDS[i]
        copy[field] = rawget(meta, field)
    end
    -- A copy of a protected metatable keeps its `__metatable`, so Lua itself answers
    -- `getmetatable` with it and refuses to replace it.
    if rawget(meta, "__metatable") == nil then copy[ORIGINAL] = meta end
    latest[meta] = copy
    return copy
end

local function sandbox_setmetatable(...)
    local nargs = select("#", ...)
    local t, meta = ...
    if type(t) ~= "table" then args.typeerror("setmetatable", 1, t, nargs >= 1, "table", 2) end
    if nargs < 2 or (meta ~= nil and type(meta) ~= "table") then
        args.typeerror("setmetatable", 2, meta, nargs >= 2, "nil or table", 2)
    end
    if meta ~= nil then
        for i = 1, #FORBIDDEN do
            local field = FORBIDDEN[i]
            if rawget(meta, field) ~= nil then
                error("setmetatable: the `" .. field .. "` metamethod is not allowed in the sandbox: it would run outside the time budget", 2)
            end
        end
        local mode = rawget(meta, "__mode")
        if type(mode) == "string" and find(mode, "k", 1, true) and not find(mode, "v", 1, true) then
            error("setmetatable: tables with weak keys only (`__mode = \"k\"`) are not allowed in the sandbox: the collector can take quadratic time over them; use `__mode = \"kv\"`", 2)
        end
        meta = copy_of(meta)
    end
    local current = getmetatable(t)
    if current == nil or (type(current) == "table" and rawget(current, ORIGINAL) ~= nil) then
        return setmetatable(t, meta)
    end
    -- The current metatable may be protected (its `__metatable` is what we see).
    if not pcall(setmetatable, t, meta) then error("cannot change a protected metatable", 2) end
    return t
end

local function sandbox_getmetatable(...)
    if select("#", ...) == 0 then args.argerror("getmetatable", 1, "value expected", 2) end
    local meta = getmetatable((...))
    if type(meta) == "table" then
        local original = rawget(meta, ORIGINAL)
        if original ~= nil then return original end
    end
    return meta
end

-- The string metatable is shared by every string and its `__index` is the `string`
-- table. Scripts see a read-only view of it: `getmetatable("").__index` is still the
-- `string` table (which they may extend), but nothing can be added to the metatable.
local strings = getmetatable("")
local view = setmetatable({ __index = rawget(strings, "__index") }, {
    __newindex = function()
        error("the string metatable is read-only in the sandbox", 2)
    end,
    __metatable = false,
})
strings.__metatable = view

return sandbox_setmetatable, sandbox_getmetatable
