//! Replaces `string.find`, `string.match`, `string.gmatch` and `string.gsub` with the
//! Rust pattern engine of `pattern`, which checks the time budget while it matches.
//!
//! Each function is a Rust "core" behind a small Lua wrapper. The wrappers exist because
//! an error returned from a Rust callback reaches scripts as an mlua userdata, not as the
//! string Lua's own functions raise, and an error raised inside a `gsub` replacement
//! function would come back stringified with a traceback. So the cores report their
//! outcome as values: a status code first, then the results, the message to raise, or the
//! error value to re-raise unchanged. Only the spent time budget (and other errors of the
//! state itself) leaves a core as a Rust error, the same way the instruction hook raises it.

use std::borrow::Cow;

use mlua::{Function, Lua, LuaString, MultiValue, Table, Value, Variadic};

use super::chunk::Chunk;
use super::pattern::{self, Budget, Capture, Matcher};

/// The core succeeded; the results follow.
const OK: i64 = 0;
/// A pattern or argument error; the message follows and gets the caller's position.
const RAISE: i64 = 1;
/// A replacement function or `__index` raised an error; the error value follows.
const RETHROW: i64 = 2;

/// Turns the cores' status codes into results and errors, as Lua's own functions would.
/// The wrappers tail-call `unwrap`, so its level 2 is the script line that called them,
/// the position Lua's C functions report. One difference remains: when the script itself
/// tail-calls (`return s:find(p)`), our Lua wrapper takes over the script function's
/// frame, so the position is that of the line one call further out.
const WRAPPERS: &str = r#"
local find, match, gmatch, gsub, OK, RAISE = ...
local error, pcall, type = error, pcall, type

local function unwrap(status, ...)
    if status == OK then return ... end
    if status == RAISE then error((...), 2) end
    error((...), 0)
end

-- gsub reaches replacement functions and tables through `apply`, so their errors come
-- back to the core as values and can be re-raised unchanged.
local function index(t, k) return t[k] end
local function apply(repl, ...)
    if type(repl) == "table" then return pcall(index, repl, ...) end
    return pcall(repl, ...)
end

return function(...) return unwrap(find(...)) end,
    function(...) return unwrap(match(...)) end,
    function(...)
        local status, iterate = gmatch(...)
        if status ~= OK then error(iterate, 2) end
        return function() return unwrap(iterate()) end
    end,
    function(...) return unwrap(gsub(apply, ...)) end
"#;

static WRAPPER_CHUNK: Chunk = Chunk::new("=string", WRAPPERS);

/// Installs the bounded pattern functions into the state's `string` table. The string
/// metatable's `__index` is that table, so method calls such as `s:find(p)` use them too.
pub(crate) fn install(lua: &Lua) -> mlua::Result<()> {
    let find = lua.create_function(|lua, args: Variadic<Value>| reply(lua, find_aux(lua, &args, true)))?;
    let match_ = lua.create_function(|lua, args: Variadic<Value>| reply(lua, find_aux(lua, &args, false)))?;
    let gmatch = lua.create_function(|lua, args: Variadic<Value>| reply(lua, gmatch(lua, &args)))?;
    let gsub =
        lua.create_function(|lua, (apply, args): (Function, Variadic<Value>)| reply(lua, gsub(lua, &apply, &args)))?;
    let (find, match_, gmatch, gsub): (Function, Function, Function, Function) =
        WRAPPER_CHUNK.load(lua)?.call((find, match_, gmatch, gsub, OK, RAISE))?;
    let string: Table = lua.globals().get("string")?;
    string.raw_set("find", find)?;
    string.raw_set("match", match_)?;
    string.raw_set("gmatch", gmatch)?;
    string.raw_set("gsub", gsub)?;
    Ok(())
}

/// How a core failed.
enum Failure {
    /// Raise this message from the calling line.
    Raise(String),
    /// Re-raise this error value unchanged.
    Rethrow(Value),
    /// An error of the state itself, such as the spent time budget.
    Lua(mlua::Error),
}

impl From<mlua::Error> for Failure {
    fn from(err: mlua::Error) -> Self {
        Failure::Lua(err)
    }
}

impl From<pattern::Error> for Failure {
    fn from(err: pattern::Error) -> Self {
        match err {
            pattern::Error::Pattern(message) => Failure::Raise(message),
            pattern::Error::Lua(err) => Failure::Lua(err),
        }
    }
}

type Outcome = Result<Vec<Value>, Failure>;

/// Encodes an outcome for the wrappers: the status code, then the values.
fn reply(lua: &Lua, outcome: Outcome) -> mlua::Result<MultiValue> {
    let (status, mut values) = match outcome {
        Ok(values) => (OK, values),
        Err(Failure::Raise(message)) => (RAISE, vec![Value::String(lua.create_string(message)?)]),
        Err(Failure::Rethrow(value)) => (RETHROW, vec![value]),
        Err(Failure::Lua(err)) => return Err(err),
    };
    values.insert(0, Value::Integer(status));
    Ok(MultiValue::from_vec(values))
}

/// The arguments of one call, checked with the messages of Lua's `luaL_check*`.
struct Args<'a> {
    lua: &'a Lua,
    name: &'static str,
    values: &'a [Value],
}

impl Args<'_> {
    fn get(&self, n: usize) -> Option<&Value> {
        self.values.get(n - 1)
    }

    fn bad(&self, n: usize, message: &str) -> Failure {
        Failure::Raise(format!("bad argument #{n} to '{}' ({message})", self.name))
    }

    fn type_error(&self, n: usize, expected: &str) -> Failure {
        self.bad(n, &format!("{expected} expected, got {}", type_name(self.get(n))))
    }

    /// A string argument; numbers are converted as Lua converts them (`luaL_checklstring`).
    /// Borrowed when it is a string already: cloning a Lua reference is not free.
    fn string(&self, n: usize) -> Result<Cow<'_, LuaString>, Failure> {
        match self.get(n) {
            Some(Value::String(s)) => Ok(Cow::Borrowed(s)),
            Some(v @ (Value::Integer(_) | Value::Number(_))) => {
                Ok(Cow::Owned(self.lua.coerce_string(v.clone())?.ok_or_else(|| self.type_error(n, "string"))?))
            }
            _ => Err(self.type_error(n, "string")),
        }
    }

    /// An optional integer argument (`luaL_optinteger`); numeric strings count.
    fn opt_integer(&self, n: usize, default: i64) -> Result<i64, Failure> {
        let value = match self.get(n) {
            None | Some(Value::Nil) => return Ok(default),
            Some(Value::Integer(i)) => return Ok(*i),
            Some(value) => value.clone(),
        };
        if let Some(i) = self.lua.coerce_integer(value.clone())? {
            Ok(i)
        } else if self.lua.coerce_number(value)?.is_some() {
            Err(self.bad(n, "number has no integer representation"))
        } else {
            Err(self.type_error(n, "number"))
        }
    }
}

/// The type name Lua's argument errors use (`luaL_typename`, or "no value").
fn type_name(value: Option<&Value>) -> &'static str {
    match value {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::LightUserData(_)) => "light userdata",
        Some(Value::Integer(_) | Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    }
}

fn truthy(value: Option<&Value>) -> bool {
    !matches!(value, None | Some(Value::Nil | Value::Boolean(false)))
}

fn integer(n: usize) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// The 0-based start of a search from Lua's 1-based, possibly negative `init`
/// (`posrelatI` minus one). May exceed the subject's length.
fn start_index(init: i64, len: usize) -> usize {
    let back = usize::try_from(init.unsigned_abs()).unwrap_or(usize::MAX);
    match init {
        1.. => back - 1,
        0 => 0,
        _ if back > len => 0,
        _ => len - back,
    }
}

/// A pattern without its `^` anchor, and whether it had one.
fn split_anchor(pattern: &[u8]) -> (bool, &[u8]) {
    match pattern.split_first() {
        Some((b'^', rest)) => (true, rest),
        _ => (false, pattern),
    }
}

fn capture_value(lua: &Lua, capture: Capture) -> mlua::Result<Value> {
    Ok(match capture {
        Capture::Text(text) => Value::String(lua.create_string(text)?),
        Capture::Position(position) => integer(position),
    })
}

fn capture_values(lua: &Lua, captures: Vec<Capture>) -> Outcome {
    Ok(captures.into_iter().map(|c| capture_value(lua, c)).collect::<mlua::Result<_>>()?)
}

/// `string.find` (`find`) and `string.match` (`!find`), as `str_find_aux`.
fn find_aux(lua: &Lua, values: &[Value], find: bool) -> Outcome {
    let args = Args { lua, name: if find { "find" } else { "match" }, values };
    let subject = args.string(1)?;
    let pattern = args.string(2)?;
    let (subject, pattern) = (subject.as_bytes(), pattern.as_bytes());
    let (s, p): (&[u8], &[u8]) = (&subject, &pattern);
    let init = start_index(args.opt_integer(3, 1)?, s.len());
    if init > s.len() {
        return Ok(vec![Value::Nil]);
    }
    if find && (truthy(args.get(4)) || pattern::no_specials(p)) {
        return Ok(match pattern::find_plain(&mut Budget::new(lua), s, p, init)? {
            Some(at) => vec![integer(at + 1), integer(at + p.len())],
            None => vec![Value::Nil],
        });
    }
    let (anchored, p) = split_anchor(p);
    let mut matcher = Matcher::new(lua, s, p);
    let mut start = init;
    loop {
        if let Some(end) = matcher.match_at(start)? {
            if !find {
                return capture_values(lua, matcher.captures(Some((start, end)))?);
            }
            let mut results = vec![integer(start + 1), integer(end)];
            results.extend(capture_values(lua, matcher.captures(None)?)?);
            return Ok(results);
        }
        if anchored || start >= s.len() {
            return Ok(vec![Value::Nil]);
        }
        start += 1;
    }
}

/// `string.gmatch`: returns the iterator. A `^` in the pattern is an ordinary character
/// here, as in Lua 5.4.
fn gmatch(lua: &Lua, values: &[Value]) -> Outcome {
    let args = Args { lua, name: "gmatch", values };
    let subject = args.string(1)?.into_owned();
    let pattern = args.string(2)?.into_owned();
    let len = subject.as_bytes().len();
    let mut state = GmatchState { next: start_index(args.opt_integer(3, 1)?, len).min(len + 1), last_match: None };
    let iterate = lua.create_function_mut(move |lua, _: MultiValue| {
        reply(lua, gmatch_step(lua, &subject.as_bytes(), &pattern.as_bytes(), &mut state))
    })?;
    Ok(vec![Value::Function(iterate)])
}

struct GmatchState {
    /// Where the next search starts.
    next: usize,
    /// The end of the last match, so an empty match cannot repeat at the same place.
    last_match: Option<usize>,
}

/// One call of the gmatch iterator (`gmatch_aux`): the next match's captures, or nothing.
fn gmatch_step(lua: &Lua, s: &[u8], p: &[u8], state: &mut GmatchState) -> Outcome {
    let mut matcher = Matcher::new(lua, s, p);
    for start in state.next..=s.len() {
        match matcher.match_at(start)? {
            Some(end) if state.last_match != Some(end) => {
                (state.next, state.last_match) = (end, Some(end));
                return capture_values(lua, matcher.captures(Some((start, end)))?);
            }
            _ => {}
        }
    }
    state.next = s.len() + 1; // nothing more to find; later calls end at once
    Ok(Vec::new())
}

/// What `string.gsub` replaces matches with.
enum Replacement {
    Text(LuaString),
    Table(Table),
    Function(Function),
}

/// `string.gsub` (`str_gsub`). `apply` is the wrappers' helper that calls a replacement
/// function or indexes a replacement table under `pcall`.
fn gsub(lua: &Lua, apply: &Function, values: &[Value]) -> Outcome {
    let args = Args { lua, name: "gsub", values };
    let subject = args.string(1)?;
    let pattern = args.string(2)?;
    let (s, p) = (subject.as_bytes(), pattern.as_bytes());
    let (s, p): (&[u8], &[u8]) = (&s, &p);
    let max = args.opt_integer(4, i64::try_from(s.len()).map_or(i64::MAX, |len| len.saturating_add(1)))?;
    let replacement = match args.get(3) {
        Some(Value::String(_) | Value::Integer(_) | Value::Number(_)) => {
            Replacement::Text(args.string(3)?.into_owned())
        }
        Some(Value::Table(table)) => Replacement::Table(table.clone()),
        Some(Value::Function(function)) => Replacement::Function(function.clone()),
        _ => return Err(args.type_error(3, "string/function/table")),
    };
    let (anchored, p) = split_anchor(p);
    let mut matcher = Matcher::new(lua, s, p);
    let mut out = Output::new(lua);
    let (mut pos, mut last_match, mut count, mut changed) = (0, None, 0, false);
    while count < max {
        match matcher.match_at(pos)? {
            Some(end) if last_match != Some(end) => {
                count += 1;
                if let Replacement::Text(text) = &replacement {
                    // Expanding the replacement may produce nothing, e.g. `%1` for an
                    // empty capture, yet takes time proportional to its length.
                    matcher.charge(1 + text.as_bytes().len() / 64)?;
                }
                changed |= add_value(lua, &matcher, &replacement, apply, &mut out, (pos, end))?;
                (pos, last_match) = (end, Some(end));
            }
            _ if pos < s.len() => {
                out.push(&s[pos..=pos])?;
                pos += 1;
            }
            _ => break,
        }
        if anchored {
            break;
        }
    }
    let result = if changed {
        out.push(&s[pos..])?;
        out.finish()?
    } else {
        subject.into_owned() // Lua returns the subject itself when nothing changed
    };
    Ok(vec![Value::String(result), Value::Integer(count)])
}

/// Appends the replacement of the match `whole` (`add_value`); returns whether it
/// changed the text. Nil or false from a function or table keeps the original match.
fn add_value(
    lua: &Lua,
    matcher: &Matcher,
    replacement: &Replacement,
    apply: &Function,
    out: &mut Output,
    whole: (usize, usize),
) -> Result<bool, Failure> {
    let value = match replacement {
        Replacement::Text(text) => {
            add_text(matcher, &text.as_bytes(), whole, out)?;
            return Ok(true);
        }
        Replacement::Table(table) => {
            let key = capture_value(lua, matcher.capture(0, Some(whole))?)?;
            protected_call(apply, MultiValue::from_vec(vec![Value::Table(table.clone()), key]))?
        }
        Replacement::Function(function) => {
            let mut call = vec![Value::Function(function.clone())];
            call.extend(capture_values(lua, matcher.captures(Some(whole))?)?);
            protected_call(apply, MultiValue::from_vec(call))?
        }
    };
    let text = match value {
        Value::Nil | Value::Boolean(false) => {
            out.push(&matcher.subject()[whole.0..whole.1])?;
            return Ok(false);
        }
        Value::String(s) => s,
        v @ (Value::Integer(_) | Value::Number(_)) => match lua.coerce_string(v)? {
            Some(s) => s,
            None => return Err(Failure::Raise("invalid replacement value (a number)".into())),
        },
        other => {
            return Err(Failure::Raise(format!("invalid replacement value (a {})", type_name(Some(&other)))));
        }
    };
    out.push(&text.as_bytes())?;
    Ok(true)
}

/// Appends a replacement string with its `%0`-`%9` and `%%` expanded (`add_s`).
fn add_text(matcher: &Matcher, text: &[u8], whole: (usize, usize), out: &mut Output) -> Result<(), Failure> {
    let mut rest = text;
    while let Some(at) = rest.iter().position(|&c| c == b'%') {
        out.push(&rest[..at])?;
        match rest.get(at + 1).copied() {
            Some(b'%') => out.push(b"%")?,
            Some(b'0') => out.push(&matcher.subject()[whole.0..whole.1])?,
            Some(digit @ b'1'..=b'9') => match matcher.capture(usize::from(digit - b'1'), Some(whole))? {
                Capture::Text(captured) => out.push(captured)?,
                Capture::Position(position) => out.push(position.to_string().as_bytes())?,
            },
            _ => return Err(Failure::Raise("invalid use of '%' in replacement string".into())),
        }
        rest = &rest[at + 2..];
    }
    Ok(out.push(rest)?)
}

/// Calls the wrappers' `apply` helper, which answers like `pcall`: the replacement
/// value, or the error value to re-raise.
fn protected_call(apply: &Function, args: MultiValue) -> Result<Value, Failure> {
    let mut results = apply.call::<MultiValue>(args)?.into_iter();
    let ok = matches!(results.next(), Some(Value::Boolean(true)));
    let value = results.next().unwrap_or(Value::Nil);
    if ok { Ok(value) } else { Err(Failure::Rethrow(value)) }
}

/// The text `gsub` builds. It grows outside the Lua allocator, so it moves into Lua
/// strings in chunks: the state's memory limit then stops a runaway replacement long
/// before it can exhaust the host's memory.
struct Output<'l> {
    lua: &'l Lua,
    pending: Vec<u8>,
    chunks: Vec<LuaString>,
}

impl<'l> Output<'l> {
    const CHUNK: usize = 64 * 1024;

    fn new(lua: &'l Lua) -> Self {
        Output { lua, pending: Vec::new(), chunks: Vec::new() }
    }

    fn push(&mut self, bytes: &[u8]) -> mlua::Result<()> {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= Self::CHUNK {
            self.chunks.push(self.lua.create_string(&self.pending)?);
            self.pending.clear();
        }
        Ok(())
    }

    fn finish(self) -> mlua::Result<LuaString> {
        if self.chunks.is_empty() {
            return self.lua.create_string(&self.pending);
        }
        let total = self.chunks.iter().map(|c| c.as_bytes().len()).sum::<usize>() + self.pending.len();
        let mut all = Vec::with_capacity(total);
        for chunk in &self.chunks {
            all.extend_from_slice(&chunk.as_bytes());
        }
        all.extend_from_slice(&self.pending);
        self.lua.create_string(&all)
    }
}

#[cfg(test)]
mod tests {
    use mlua::{Function, Lua};

    use crate::sandbox::{Limits, arm, new_state};

    /// Helpers for the cases. None tail-calls a string function: a tail call hides the
    /// calling line, and our Lua wrappers report the next line out (see `WRAPPERS`).
    const PRELUDE: &str = r#"
        local all = {}
        for i = 0, 255 do all[#all + 1] = string.char(i) end
        local ALL = table.concat(all)
        local function collect(...)
            local out = {}
            for a, b in ... do out[#out + 1] = tostring(a) .. "/" .. tostring(b) end
            return table.concat(out, ";")
        end
        local function replace(s, p)
            local r, n = string.gsub(s, p, "<%0>")
            return r, n
        end
        local function replace_with_function(s, p)
            local r, n = string.gsub(s, p, function(...)
                local t = table.pack(...)
                for i = 1, t.n do t[i] = tostring(t[i]) end
                return "<" .. table.concat(t, ",") .. ">"
            end)
            return r, n
        end
    "#;

    /// Runs a case under `pcall` and describes what it returned or raised.
    const DESCRIBE: &str = r#"
        local case = ...
        local results = table.pack(pcall(case))
        if not results[1] then return "error: " .. tostring(results[2]) end
        local parts = { tostring(results.n - 1) }
        for i = 2, results.n do
            parts[#parts + 1] = type(results[i]) .. ":" .. tostring(results[i])
        end
        return table.concat(parts, " ")
    "#;

    /// `subject, pattern[, init]` argument lists (Lua source), each run through `find`,
    /// `match`, `gmatch`, and `gsub` with a string and with a function replacement.
    #[rustfmt::skip]
    const ARGUMENTS: &[&str] = &[
        // init handling, anchors, numbers as subjects.
        r#""hello world", "o w""#, r#""hello world", "o", 6"#, r#""hello", "l", -2"#, r#""hello", "l", -100"#,
        r#""hello", "", 10"#, r#""hello", "", 6"#, r#""hello", "", 0"#, r#""hello", "lo", 5"#, r#""", """#,
        r#""abcabc", "cab", 2"#, r#"123456, 34"#, r#"1.5, ".", 2"#, r#""abc", "^b""#, r#""abc", "^a""#,
        r#""abc", "^""#, r#""abc", "c$""#, r#""abc", "b$""#, r#""a$b", "$b""#, r#""aaa", "^a-$""#,
        r#""^a^b", "^%a""#,
        // Quantifiers, captures, back-references, %b, %f.
        r#""key = value", "(%w+)%s*=%s*(%w+)""#, r#""hello", ".-l""#, r#""hello", ".*l""#, r#""hello", "l+""#,
        r#""hello", "x?h""#, r#""hello", "he?l?x?""#, r#""abc", "b*""#, r#"string.rep("a", 10), "a-b""#,
        r#""aaab", "a-b""#, r#""2024-01-15", "(%d+)-(%d+)-(%d+)""#, r#""  trim me  ", "^%s*(.-)%s*$""#,
        r#""a.b.c", "^(.-)%.""#, r#""path/to/file.txt", "([^/]+)$""#, r#""hello", "(h)(e)(l)(l)(o)""#,
        r#""hello", "(l)(l)""#, r#""hello", "()ll()""#, r#""hello", "()""#, r#""hello", "h()e()""#,
        r#""abcabc", "(a)(b)(c)%1%2%3""#, r#""xyzzy", "(z)%1""#, r#""ab()ab", "()ab%1""#,
        r#""f(a(b)c)d", "%b()""#, r#""f(a(b c)d", "%b()""#, r#""x<<a>b>", "%b<>()""#,
        r#""THE (quick) fox", "%f[%a]%a+", 5"#, r#""hello world", "%f[%w]%w+$""#, r#""abc", "%f[%z]""#,
        // Sets and classes (each class also runs over every byte value, see below).
        r#""[]x", "[]]""#, r#""a-b", "[a%-]+""#, r#""a^b", "[%^b]+", 2"#, r#""hello123", "[^%a]+""#,
        r#""Hello World", "[A-Z][a-z]+""#, r#""x-", "[a-]+", 2"#, r#""]", "[^]]""#, r#""\t\v\f x", "%s+""#,
        r#""\xff\xfe", "[\xfe]""#, r#""caf\xc3\xa9", "%a+$""#, r#""a\0b", "%z(.)""#,
        r#"ALL, "[%A%C%D%G%L%P%S%U%W%X]+""#, r#"ALL, "[^%a_%d]+""#, r#"ALL, "[%z\1-\31%Z]""#,
        // Errors, with Lua's messages and positions.
        r#""a", "%""#, r#""a", "[a""#, r#""a", "[^""#, r#""a", "[a%""#, r#""a", "%1""#, r#""a", "(a)%2""#,
        r#""a", "(a%1)""#, r#""a", "a)""#, r#""a", "(a""#, r#""a", "%0""#, r#""a", "%fa""#, r#""a", "%b""#,
        r#""a", "%bx""#, r#""a", string.rep("()", 33)"#, r#""a", string.rep("()", 32)"#,
        r#"string.rep("a", 300), string.rep("a?", 300)"#, r#"string.rep("a", 300), string.rep("a?", 150)"#,
        r#""a", "a", "x""#, r#""a", "a", 1.5"#, r#""abc", "b", "2""#, r#""abc", "b", 2.0"#, r#"{}, "a""#,
        r#"nil, "a""#, r#""a""#,
    ];

    /// Calls that do not fit the mould of `ARGUMENTS`.
    const CALLS: &[&str] = &[
        r#"string.find("a.b", ".", 1, true)"#,
        r#"string.find("a+b", "+", 1, true)"#,
        r#"string.find("abc", "b", nil, 1)"#,
        r#"string.find("a(b", "(", 1, false)"#,
        r#"("a b"):find(" ")"#,
        r#"("x"):match("(x)")"#,
        r#"pcall(string.find, "a", "[")"#,
        r#"string.gsub("hello world", "o", "0", 1)"#,
        r#"string.gsub("hello world", "o", "0", 0)"#,
        r#"string.gsub("hello world", "o", "0", -1)"#,
        r#"string.gsub("a,b,,c", ",", ";", 2.0)"#,
        r#"string.gsub("hello world", "(%w+)", "<%1>")"#,
        r#"string.gsub("hello world", "%w+", "%0 %0")"#,
        r#"string.gsub("abc", "%w", "%%")"#,
        r#"string.gsub("abc", "b", "%1")"#,
        r#"string.gsub("hello world", "(o)()", "%2")"#,
        r#"string.gsub(12345, "3", 9)"#,
        r#"string.gsub("abc", "x", "y")"#,
        r#"("hello"):gsub("l", "L")"#,
        r#"string.gsub("hello", "l", {l = "L"})"#,
        r#"string.gsub("hello", "(h)(e)", {h = "H"})"#,
        r#"string.gsub("hello world", "%w+", {hello = 1, world = false})"#,
        r#"string.gsub("abc", "()", {[2] = "two"})"#,
        r#"string.gsub("hello", ".", function(c) return c:upper() end)"#,
        r#"string.gsub("abc", "%w", function(c) if c == "b" then return nil end return 1.5 end)"#,
        r#"string.gsub("abc", "%w", function(c) return string.gsub(c, ".", "%0%0") end)"#,
        r#"string.gsub("a", "a")"#,
        r#"string.gsub("a", "a", true)"#,
        r#"string.gsub("a", "a", "x", "y")"#,
        r#"string.gsub("abc", "%w", "%2")"#,
        r#"string.gsub("abc", "%w", "%")"#,
        r#"string.gsub("abc", "%w", "%x")"#,
        r#"string.gsub("abc", "%w", function() return {} end)"#,
        r#"string.gsub("abc", "%w", function() error("boom") end)"#,
        r#"select(2, pcall(string.gsub, "abc", "%w", function() error({code = 7}) end)).code"#,
        r#"string.gsub("abc", "%w", setmetatable({}, {__index = function(t, k) error("no " .. k) end}))"#,
        r#"collect(string.gmatch("abc", ".", -1))"#,
        r#"collect(string.gmatch("abc", ".", 10))"#,
        r#"collect(("a1b2"):gmatch("%a(%d)"))"#,
        r#"string.gmatch("a", "a", {})"#,
    ];

    /// The text gsub builds lives outside the Lua allocator until it is done; it must
    /// still stop at the state's memory limit instead of growing the host process.
    #[test]
    fn gsub_output_obeys_the_memory_limit() {
        let lua = new_state(Limits::DEFINITION).expect("sandbox state");
        let script = "return string.gsub(string.rep('a', 1000000), '', string.rep('x', 1000))";
        let err = lua.load(script).exec().expect_err("a gigabyte of output");
        assert!(err.to_string().contains("memory"), "{err}");
    }

    fn describe(lua: &Lua, case: &str) -> String {
        let chunk =
            format!("{PRELUDE}\nreturn function() local r = table.pack({case}) return table.unpack(r, 1, r.n) end");
        // Results are bytes, often not UTF-8 (the cases run over every byte value): they are
        // compared escaped, not converted to a `String`, which would fail on both sides alike.
        let run = || -> mlua::Result<String> {
            let case: Function = lua.load(&chunk).set_name("=case").eval()?;
            let described: mlua::LuaString = lua.load(DESCRIBE).set_name("=describe").call(case)?;
            Ok(described.as_bytes().escape_ascii().to_string())
        };
        run().unwrap_or_else(|err| format!("host error: {err}"))
    }

    /// How many cases `pattern_functions_agree_with_lua` runs. Pinned, so that a change to
    /// the lists or to the way cases are made that silently drops some fails the test.
    const CASES: usize = 565;

    /// Whether each of the four pattern functions of `lua` is a Lua function (our wrappers)
    /// or a C function (Lua's own).
    fn kinds(lua: &Lua) -> Vec<String> {
        ["find", "match", "gmatch", "gsub"]
            .iter()
            .map(|name| {
                let function: Function = lua.load(format!("return string.{name}")).eval().expect("a function");
                format!("{name}: {}", function.info().what)
            })
            .collect()
    }

    /// Every case gives the same results, or the same error message at the same line, with
    /// Lua's C functions (a plain state) and with ours (a sandbox state).
    #[test]
    fn pattern_functions_agree_with_lua() {
        let reference = Lua::new();
        let sandbox = new_state(Limits::DEFINITION).expect("sandbox state");
        // Otherwise the comparison would be of Lua's functions with themselves.
        assert_eq!(kinds(&reference), ["find: C", "match: C", "gmatch: C", "gsub: C"], "the reference is plain Lua");
        assert_eq!(
            kinds(&sandbox),
            ["find: Lua", "match: Lua", "gmatch: Lua", "gsub: Lua"],
            "the sandbox should use the wrapped Rust functions for all four"
        );

        let forms = ["string.find({})", "string.match({})", "collect(string.gmatch({}))", "replace({})"];
        let forms = forms.into_iter().chain(["replace_with_function({})"]);
        let classes = "acdglpsuwxACDGLPSUWX".chars().map(|class| format!(r#"ALL, "%{class}+""#));
        let arguments: Vec<String> = ARGUMENTS.iter().map(|args| args.to_string()).chain(classes).collect();
        let cases: Vec<String> = forms
            .flat_map(|form| arguments.iter().map(move |args| form.replace("{}", args)))
            .chain(CALLS.iter().map(|call| call.to_string()))
            .collect();
        assert_eq!(cases.len(), CASES, "the number of cases changed; update CASES if that was meant");
        let mut failures = Vec::new();
        let (mut raised, mut broken) = (0, Vec::new());
        for case in &cases {
            arm(&sandbox).expect("arm");
            let (expected, actual) = (describe(&reference, case), describe(&sandbox, case));
            if expected.starts_with("error: ") {
                raised += 1;
            } else if expected.starts_with("host error: ") {
                broken.push(format!("{case}\n  {expected}"));
            }
            if expected != actual {
                failures.push(format!("{case}\n  lua:  {expected}\n  ours: {actual}"));
            }
        }
        // Cases that cannot even run (a broken prelude, say) would agree on both sides and
        // prove nothing; so would a list where most cases only raise.
        assert!(broken.is_empty(), "{} cases do not run on plain Lua:\n{}", broken.len(), broken.join("\n"));
        assert!(raised * 4 < cases.len(), "{raised} of {} cases raise an error on plain Lua", cases.len());
        assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
    }
}
