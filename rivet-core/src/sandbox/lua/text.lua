-- Guards for the C functions whose work a short call can make long: `string.rep` of an
-- empty string loops once per repetition without allocating anything, and `os.date`
-- spends time on every conversion of its format.
local rep, date, MAX_DATE_FORMAT, args = ...
local error, select, type = error, select, type

-- `MAXSIZE` of lstrlib.c: the longest string `string.rep` makes.
local MAXSIZE = 0x7fffffff

local function sandbox_rep(...)
    local nargs = select("#", ...)
    local s, n, sep = ...
    s = args.string("rep", 1, s, nargs >= 1)
    n = args.integer("rep", 2, n, nargs >= 2)
    sep = args.opt_string("rep", 3, sep, "")
    local width = #s + #sep
    if n <= 0 or width == 0 then return "" end
    if width > MAXSIZE // n then error("resulting string too large", 2) end
    -- Every repetition now copies at least one byte of a string that was allocated, and
    -- paid for, before the copying starts.
    return rep(s, n, sep)
end

local function sandbox_date(...)
    local format = ...
    if type(format) == "string" and #format > MAX_DATE_FORMAT then
        error("os.date: a format of " .. #format .. " bytes exceeds the sandbox's limit of "
            .. MAX_DATE_FORMAT .. " bytes for a date format", 2)
    end
    return date(...)
end

return sandbox_rep, sandbox_date
