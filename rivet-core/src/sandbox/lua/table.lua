-- The looping functions of the table library, ported from Lua 5.4's ltablib.c to Lua.
--
-- Lua's C versions loop inside one C call, where the time budget's instruction hook never
-- fires; over a table whose `__len` is huge, or a huge index range, they can run for
-- hours without allocating anything. Written in Lua, every step of every loop is a VM
-- instruction the hook counts, and metamethods are honoured exactly as `lua_geti`,
-- `lua_seti` and `luaL_len` honour them. The C `concat` and `unpack` still do the final
-- step, over a fresh table of values this code checked: their work is then proportional
-- to memory the script already paid for.
local args, concat, unpack, getmetatable, os_clock, os_time = ...
local error, rawget, type, select, tointeger, ult = error, rawget, type, select, math.tointeger, math.ult
local MAXINTEGER = math.maxinteger
local READ, WRITE, LENGTH = args.READ, args.WRITE, args.LENGTH

-- C's INT_MAX, which bounds `sort` and `unpack`.
local INT_MAX = 0x7fffffff
-- How many values `unpack` may return: Lua's stack holds at most LUAI_MAXSTACK slots,
-- and the caller's frames need some of them.
local MAX_UNPACK = 1000000 - 1000
-- Arrays larger than this may use randomized pivots (`RANLIMIT`).
local RANLIMIT = 100

-- Lua's name for a value's type in operator errors (`luaT_objtypename`).
local function objtypename(value)
    local meta = getmetatable(value)
    if type(meta) == "table" then
        local name = rawget(meta, "__name")
        if type(name) == "string" then return name end
    end
    return type(value)
end

local function metafield(value, field)
    local meta = getmetatable(value)
    return type(meta) == "table" and rawget(meta, field) ~= nil
end

-- `luaL_len`: the length, which must be an integer. Raises at the caller's caller; an
-- operator error has no position, as when Lua's C code raises it.
local function length(t)
    local kind = type(t)
    if kind ~= "table" and kind ~= "string" and not metafield(t, "__len") then
        error("attempt to get length of a " .. objtypename(t) .. " value", 0)
    end
    local n = #t
    local integer = tointeger(n)
    if integer == nil then error("object length is not an integer", 3) end
    return integer
end

local table = {}

function table.insert(...)
    local nargs = select("#", ...)
    local t, pos, value = ...
    args.table("insert", 1, t, nargs >= 1, READ | WRITE | LENGTH)
    local e = length(t) + 1 -- first empty element
    if nargs == 2 then
        t[e] = pos
        return
    elseif nargs ~= 3 then
        error("wrong number of arguments to 'insert'", 2)
    end
    pos = args.integer("insert", 2, pos, true)
    -- `pos` must be in [1, e].
    if not ult(pos - 1, e) then args.argerror("insert", 2, "position out of bounds", 2) end
    for i = e, pos + 1, -1 do
        t[i] = t[i - 1]
    end
    t[pos] = value
end

function table.remove(...)
    local nargs = select("#", ...)
    local t, pos = ...
    args.table("remove", 1, t, nargs >= 1, READ | WRITE | LENGTH)
    local size = length(t)
    pos = args.opt_integer("remove", 2, pos, size)
    -- A given `pos` must be in [1, size + 1].
    if pos ~= size and ult(size, pos - 1) then args.argerror("remove", 2, "position out of bounds", 2) end
    local result = t[pos]
    while pos < size do
        t[pos] = t[pos + 1]
        pos = pos + 1
    end
    t[pos] = nil
    return result
end

function table.move(...)
    local nargs = select("#", ...)
    local a1, f, e, t, a2 = ...
    f = args.integer("move", 2, f, nargs >= 2)
    e = args.integer("move", 3, e, nargs >= 3)
    t = args.integer("move", 4, t, nargs >= 4)
    local destination, index = a1, 1
    if a2 ~= nil then destination, index = a2, 5 end
    args.table("move", 1, a1, nargs >= 1, READ)
    args.table("move", index, destination, true, WRITE)
    if e >= f then
        if not (f > 0 or e < MAXINTEGER + f) then args.argerror("move", 3, "too many elements to move", 2) end
        local n = e - f + 1
        if not (t <= MAXINTEGER - n + 1) then args.argerror("move", 4, "destination wrap around", 2) end
        if t > e or t <= f or (index ~= 1 and not (a1 == destination)) then
            for i = 0, n - 1 do
                destination[t + i] = a1[f + i]
            end
        else
            for i = n - 1, 0, -1 do
                destination[t + i] = a1[f + i]
            end
        end
    end
    return destination
end

function table.concat(...)
    local nargs = select("#", ...)
    local t, sep, i, last = ...
    args.table("concat", 1, t, nargs >= 1, READ | LENGTH)
    local n = length(t)
    sep = args.opt_string("concat", 2, sep, "")
    i = args.opt_integer("concat", 3, i, 1)
    last = args.opt_integer("concat", 4, last, n)
    local values, count = {}, 0
    for index = i, last do
        local value = t[index]
        local kind = type(value)
        if kind ~= "string" and kind ~= "number" then
            error("invalid value (" .. kind .. ") at index " .. index .. " in table for 'concat'", 2)
        end
        count = count + 1
        values[count] = value
    end
    return concat(values, sep, 1, count)
end

function table.unpack(...)
    local t, i, e = ...
    i = args.opt_integer("unpack", 2, i, 1)
    if e == nil then
        e = length(t)
    else
        e = args.integer("unpack", 3, e, true)
    end
    if i > e then return end
    local n = e - i -- number of elements minus one, wrapping like C's unsigned arithmetic
    if not ult(n, MAX_UNPACK) then error("too many results to unpack", 2) end
    if type(t) == "table" and getmetatable(t) == nil then
        -- A plain table: C reads it raw, at most MAX_UNPACK values.
        return unpack(t, i, e)
    end
    local values = {}
    for k = 0, n do
        values[k + 1] = t[i + k]
    end
    return unpack(values, 1, n + 1)
end

-- Quicksort, as ltablib.c (based on 'Algorithms in MODULA-3', Robert Sedgewick), with
-- the same pivots, swaps and checks, so that equal elements end in the same order.
-- `depth` counts the recursion, so errors are raised at the script's call of `sort`.

-- `a < b`, with the error Lua's C `lua_compare` raises, without a position.
local function less(a, b)
    local ta, tb = type(a), type(b)
    if (ta == "number" and tb == "number") or (ta == "string" and tb == "string")
        or metafield(a, "__lt") or metafield(b, "__lt")
    then
        return a < b
    end
    local na, nb = objtypename(a), objtypename(b)
    if na == nb then error("attempt to compare two " .. na .. " values", 0) end
    error("attempt to compare " .. na .. " with " .. nb, 0)
end

local function randomize_pivot()
    return (os_time() + (os_clock() * 1000000) // 1) & 0xffffffff
end

local function choose_pivot(lo, up, rnd)
    local r4 = (up - lo) // 4
    return rnd % (r4 * 2) + (lo + r4)
end

-- Precondition: a[lo] <= P == a[up - 1] <= a[up]; partitions a[lo + 1 .. up - 2] and
-- returns i such that a[lo .. i - 1] <= a[i] == P <= a[i + 1 .. up].
local function partition(t, lo, up, lt, pivot, depth)
    local i, j = lo, up - 1
    while true do
        i = i + 1
        local ai = t[i]
        while lt(ai, pivot) do
            if i == up - 1 then error("invalid order function for sorting", depth + 3) end
            i = i + 1
            ai = t[i]
        end
        j = j - 1
        local aj = t[j]
        while lt(pivot, aj) do
            if j < i then error("invalid order function for sorting", depth + 3) end
            j = j - 1
            aj = t[j]
        end
        if j < i then
            t[up - 1] = ai
            t[i] = pivot
            return i
        end
        t[i] = aj
        t[j] = ai
    end
end

local function auxsort(t, lo, up, lt, rnd, depth)
    while lo < up do
        local a, b = t[lo], t[up]
        if lt(b, a) then
            t[lo] = b
            t[up] = a
        end
        if up - lo == 1 then return end
        local p
        if up - lo < RANLIMIT or rnd == 0 then
            p = (lo + up) // 2
        else
            p = choose_pivot(lo, up, rnd)
        end
        local ap, alo = t[p], t[lo]
        if lt(ap, alo) then
            t[p] = alo
            t[lo] = ap
        else
            local aup = t[up]
            if lt(aup, ap) then
                t[p] = aup
                t[up] = ap
            end
        end
        if up - lo == 2 then return end
        local pivot = t[p]
        t[p] = t[up - 1]
        t[up - 1] = pivot
        p = partition(t, lo, up, lt, pivot, depth)
        local n
        if p - lo < up - p then
            auxsort(t, lo, p - 1, lt, rnd, depth + 1)
            n = p - lo
            lo = p + 1
        else
            auxsort(t, p + 1, up, lt, rnd, depth + 1)
            n = up - p
            up = p - 1
        end
        -- C computes `up - lo` unsigned: a negative difference counts as huge.
        if ((up - lo) & 0xffffffff) // 128 > n then rnd = randomize_pivot() end
    end
end

function table.sort(...)
    local nargs = select("#", ...)
    local t, comp = ...
    args.table("sort", 1, t, nargs >= 1, READ | WRITE | LENGTH)
    local n = length(t)
    if n > 1 then
        if not (n < INT_MAX) then args.argerror("sort", 1, "array too big", 2) end
        if comp ~= nil and type(comp) ~= "function" then args.typeerror("sort", 2, comp, true, "function", 2) end
        auxsort(t, 1, n, comp or less, 0, 1)
    end
end

return table
