-- Argument checks with the messages of Lua's `luaL_check*` functions, for the library
-- functions the sandbox rewrites in Lua. Each raises its error `level` levels above its
-- caller, counted as `error` counts them, so the message carries the position of the
-- script line that called the library function, as Lua's C functions report it.
local getmetatable, rawget, type, error, tointeger, tonumber, tostring = ...

local args = {}

-- The type name Lua's argument errors use: a metatable's `__name`, else the type, or
-- "no value" for a missing argument (`luaL_typeerror`).
function args.typename(value, present)
    if not present then return "no value" end
    local meta = getmetatable(value)
    if type(meta) == "table" then
        local name = rawget(meta, "__name")
        if type(name) == "string" then return name end
    end
    return type(value)
end

function args.argerror(name, n, message, level)
    error("bad argument #" .. n .. " to '" .. name .. "' (" .. message .. ")", level + 1)
end

function args.typeerror(name, n, value, present, expected, level)
    args.argerror(name, n, expected .. " expected, got " .. args.typename(value, present), level + 1)
end

-- `luaL_checkinteger`: integers, floats with an integral value, and numeric strings.
function args.integer(name, n, value, present)
    local integer = tointeger(value)
    if integer ~= nil then return integer end
    if type(value) == "number" or (type(value) == "string" and tonumber(value) ~= nil) then
        args.argerror(name, n, "number has no integer representation", 3)
    end
    args.typeerror(name, n, value, present, "number", 3)
end

-- `luaL_optinteger`.
function args.opt_integer(name, n, value, default)
    if value == nil then return default end
    local integer = tointeger(value)
    if integer ~= nil then return integer end
    if type(value) == "number" or (type(value) == "string" and tonumber(value) ~= nil) then
        args.argerror(name, n, "number has no integer representation", 3)
    end
    args.typeerror(name, n, value, true, "number", 3)
end

-- `luaL_checklstring`: strings, and numbers converted as Lua converts them.
function args.string(name, n, value, present)
    local kind = type(value)
    if kind == "string" then return value end
    if kind == "number" then return tostring(value) end
    args.typeerror(name, n, value, present, "string", 3)
end

-- `luaL_optlstring`.
function args.opt_string(name, n, value, default)
    if value == nil then return default end
    local kind = type(value)
    if kind == "string" then return value end
    if kind == "number" then return tostring(value) end
    args.typeerror(name, n, value, true, "string", 3)
end

-- What an object must offer to stand in for a table (`checktab` in ltablib.c).
args.READ, args.WRITE, args.LENGTH = 1, 2, 4

function args.table(name, n, value, present, what)
    if type(value) == "table" then return end
    local meta = getmetatable(value)
    if type(meta) == "table"
        and (what & args.READ == 0 or rawget(meta, "__index") ~= nil)
        and (what & args.WRITE == 0 or rawget(meta, "__newindex") ~= nil)
        and (what & args.LENGTH == 0 or rawget(meta, "__len") ~= nil)
    then
        return
    end
    args.typeerror(name, n, value, present, "table", 3)
end

return args
