//! A catalogue of sandbox escapes and resource attacks. Each must end in a specific error
//! within its time budget plus a margin, with no effect on the host.
//!
//! Every attack runs on its own thread and the test waits for it with a timeout, so an
//! escape fails the test instead of hanging it.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rivet_core::Limits;
use rivet_core::sandbox::TIME_BUDGET_EXCEEDED;

use crate::support::{assert_error, errors, valid};

/// Short limits so the attacks end quickly.
const TEST_LIMITS: Limits = Limits { memory: 16 * 1024 * 1024, time: Duration::from_millis(500) };

/// How long past its budget an attack may run: generous, because the machine running the
/// tests is shared and loaded. An escape runs for hours, so it still fails clearly.
const MARGIN: Duration = Duration::from_secs(3);

/// The same memory cap with a time budget so long that a memory attack always meets the
/// cap first, however loaded the machine: which limit ends it is what such a test checks.
const MEMORY_TEST_LIMITS: Limits = Limits { memory: TEST_LIMITS.memory, time: Duration::from_secs(10) };

/// Loads `source` under [`TEST_LIMITS`] and returns its error, failing the test if the
/// script was accepted or did not end within the budget plus [`MARGIN`].
fn attack(source: &str) -> String {
    attack_under(source, TEST_LIMITS)
}

/// [`attack`] under `limits`.
fn attack_under(source: &str, limits: Limits) -> String {
    let (sender, receiver) = mpsc::channel();
    let script = source.to_owned();
    let started = Instant::now();
    thread::spawn(move || {
        let outcome = rivet_core::load(&script, "attack.lua", limits).map(|_| ()).map_err(|e| e.to_string());
        let _ = sender.send(outcome);
    });
    let deadline = limits.time + MARGIN;
    match receiver.recv_timeout(deadline) {
        Ok(Ok(())) => panic!("the attack was not refused:\n{source}"),
        Ok(Err(err)) => {
            let elapsed = started.elapsed();
            assert!(elapsed <= deadline, "the attack ran for {elapsed:?}, past {deadline:?}:\n{source}");
            err
        }
        Err(_) => panic!("the attack was still running after {deadline:?}:\n{source}"),
    }
}

/// Asserts that `source` fails with an error containing `expected`.
fn assert_attack(source: &str, expected: &str) {
    let err = attack(source);
    assert!(err.contains(expected), "expected `{expected}`:\n{source}\ngot: {err}");
}

/// Asserts that the memory cap stops `source`.
fn assert_memory(source: &str) {
    let err = attack_under(source, MEMORY_TEST_LIMITS);
    assert!(err.contains("ran out of memory (limit 16 MiB)"), "expected the memory cap:\n{source}\ngot: {err}");
}

/// Asserts that the time budget stops `source`.
fn assert_budget(source: &str) {
    assert_attack(source, TIME_BUDGET_EXCEEDED);
}

/// A valid pipeline after `prelude`, which must run without error.
fn valid_after(prelude: &str) {
    let def = valid(&format!(
        "{prelude}\nreturn pipeline.define {{ name = 'p', stages = {{ {{ name = 's', script = function() end }} }} }}"
    ));
    assert_eq!(def.name, "p");
}

#[test]
fn infinite_loop_is_stopped() {
    assert_budget("while true do end");
    let err = attack("local x = 0\nwhile true do x = x + 1 end");
    assert!(err.starts_with("attack.lua:2: script exceeded its time budget of 500ms"), "{err}");
}

#[test]
fn pcall_cannot_swallow_the_deadline() {
    assert_budget("while true do pcall(function() while true do end end) end");
    assert_budget("while true do pcall(error, 'x') end");
}

#[test]
fn coroutines_are_stopped_too() {
    assert_budget("local co = coroutine.wrap(function() while true do end end) co()");
    assert_budget("while true do coroutine.resume(coroutine.create(function() while true do end end)) end");
}

/// A coroutine gets its own hook count; a tree of coroutines that each catch the error of
/// their children would live on if only the thread the hook fired on stopped.
#[test]
fn coroutine_spawners_stop_with_the_budget() {
    assert_budget("local function s() while true do pcall(coroutine.wrap(s)) end end s()");
    assert_budget("local function s() while true do pcall(coroutine.wrap, s) pcall(s) end end s()");
    assert_budget(
        "local function s() while true do coroutine.resume(coroutine.create(s)) end end\n\
         coroutine.resume(coroutine.create(s)) while true do end",
    );
    // Coroutines suspended before the budget ran out cannot be resumed afterwards.
    assert_budget(
        "local waiting = {}\n\
         for i = 1, 100 do waiting[i] = coroutine.wrap(function() while true do coroutine.yield() end end) end\n\
         while true do for i = 1, #waiting do pcall(waiting[i]) end end",
    );
}

#[test]
fn xpcall_handler_cannot_escape_the_hook() {
    assert_budget("xpcall(function() error('x') end, function() while true do end end)");
    valid_after(
        "local ok, msg = xpcall(function() error('boom', 0) end, function(m) return 'handled ' .. m end)\n\
         assert(not ok and msg == 'handled boom')",
    );
}

/// `__gc` and `__close` run with hooks off in some paths (finalizers always; close
/// handlers of a coroutine killed by the hook), so no metatable a script can reach ever
/// holds them, however and whenever the script puts them there.
#[test]
fn finalizers_and_close_handlers_never_run() {
    assert_attack(
        "setmetatable({}, { __gc = function() while true do end end })",
        "the `__gc` metamethod is not allowed",
    );
    assert_attack(
        "local x <close> = setmetatable({}, { __close = function() while true do end end })",
        "the `__close` metamethod is not allowed",
    );
    // Put into the metatable after setmetatable.
    let added_later = "local mt = {}\nlocal o = setmetatable({}, mt)\n\
                       mt.__close = function() while true do end end\n";
    assert_attack(&format!("{added_later}do local x <close> = o end"), "variable 'x' got a non-closable value");
    // In a coroutine the budget kills, whose close handlers `wrap` then runs hooks off.
    assert_budget(&format!(
        "{added_later}local co = coroutine.wrap(function() local x <close> = o while true do end end)\n\
         pcall(co) while true do end"
    ));
    assert_budget(&format!(
        "{added_later}local co = coroutine.create(function() local x <close> = o while true do end end)\n\
         coroutine.resume(co) coroutine.close(co) while true do end"
    ));
    assert_attack(
        "local mt = {}\nlocal o = setmetatable({}, mt)\nmt.__gc = function() while true do end end\n\
         o = nil setmetatable({}, mt)",
        "the `__gc` metamethod is not allowed",
    );
    // Through the shared string metatable.
    assert_attack(
        "getmetatable('').__close = function() while true do end end\nlocal x <close> = 'a'",
        "the string metatable is read-only in the sandbox",
    );
    assert_attack(
        "rawset(getmetatable(''), '__close', function() while true do end end)\nlocal x <close> = 'a'",
        "variable 'x' got a non-closable value",
    );
    // A generic `for` closes its fourth value too.
    assert_attack(
        "local mt = {}\nlocal o = setmetatable({}, mt)\nmt.__close = function() while true do end end\n\
         for _ in next, {}, nil, o do end",
        "got a non-closable value",
    );
    // The metatables of the pipeline DSL are protected as well.
    assert_attack(
        "getmetatable(pipeline.builder()).__close = function() while true do end end",
        "attempt to index a boolean value",
    );
}

#[test]
fn metatables_still_work() {
    valid_after(
        r#"
        local Point = {}
        Point.__index = Point
        Point.__add = function(a, b) return Point.new(a.x + b.x, a.y + b.y) end
        Point.__eq = function(a, b) return a.x == b.x and a.y == b.y end
        Point.__tostring = function(p) return "(" .. p.x .. ", " .. p.y .. ")" end
        Point.__len = function() return 2 end
        Point.__call = function(p, k) return p[k] end
        function Point.new(x, y) return setmetatable({ x = x, y = y }, Point) end
        function Point:norm1() return self.x + self.y end
        local p = Point.new(1, 2) + Point.new(3, 4)
        assert(p == Point.new(4, 6) and p:norm1() == 10 and #p == 2 and p("x") == 4)
        assert(tostring(p) == "(4, 6)" and getmetatable(p) == Point)
        -- A later setmetatable replaces the metatable, and nil removes it.
        local other = {}
        assert(getmetatable(setmetatable(p, other)) == other)
        assert(getmetatable(setmetatable(p, nil)) == nil)
        -- A protected metatable stays protected.
        local locked = setmetatable({}, { __metatable = "locked" })
        assert(getmetatable(locked) == "locked")
        local ok, err = pcall(setmetatable, locked, {})
        assert(not ok and err:find("cannot change a protected metatable"), err)
        -- Weak tables, __newindex, __pairs and __name.
        local weak = setmetatable({}, { __mode = "kv" })
        weak[{}] = 1
        local values = setmetatable({}, { __mode = "v" })
        values[1] = {}
        local ok3, err3 = pcall(setmetatable, {}, { __mode = "k" })
        assert(not ok3 and err3:find("weak keys only"), err3)
        local log = {}
        local proxy = setmetatable({}, { __newindex = function(t, k, v) log[#log + 1] = k end })
        proxy.a = 1
        assert(log[1] == "a" and rawget(proxy, "a") == nil)
        local seen = 0
        for k in pairs(setmetatable({}, { __pairs = function() return next, { a = 1, b = 2 } end })) do seen = seen + 1 end
        assert(seen == 2)
        assert(tostring(setmetatable({}, { __name = "Thing" })):find("^Thing: "))
        -- Strings keep their methods, and the string table can still be extended.
        assert(("abc"):upper() == "ABC" and getmetatable("").__index == string)
        function string.shout(s) return s:upper() .. "!" end
        assert(("hi"):shout() == "HI!")
        local ok2, err2 = pcall(setmetatable, 1, {})
        assert(not ok2 and err2:find("bad argument #1 to 'setmetatable' %(table expected, got number%)"), err2)
        "#,
    );
}

#[test]
fn memory_bomb_hits_the_limit() {
    assert_memory("local t = {} for i = 1, 1e9 do t[i] = i end");
    assert_memory("local t = {} while true do t[#t + 1] = {} end");
}

#[test]
fn huge_strings_hit_the_limit() {
    assert_memory("local s = string.rep('x', 1e9)");
    assert_attack("local s = string.rep('x', 1e10)", "attack.lua:1: resulting string too large");
    assert_memory("local s = 'x' while true do s = s .. s end");
    assert_attack("local s = string.rep('x', 2^62, 'yy')", "resulting string too large");
}

/// `string.rep` of nothing loops once per repetition without allocating anything.
#[test]
fn empty_repetitions_end_at_once() {
    assert_budget("while true do local s = string.rep('', 2^50) end");
    assert_budget("while true do local s = string.rep('', 1e15, '') end");
    valid_after(
        "assert(string.rep('', 2^50) == '' and string.rep('', 1e15, '') == '' and ('ab'):rep(3, ',') == 'ab,ab,ab')",
    );
}

/// The table library's C loops run no VM instruction and, over a table's metamethods or
/// a huge range, allocate nothing: each must still end with the budget.
#[test]
fn table_functions_obey_the_budget() {
    assert_budget("table.move({}, 1, 2^62, 2)");
    assert_budget("table.move({}, 1, math.maxinteger - 1, 2, {})");
    let huge_len = "local t = setmetatable({}, { __len = function() return 2^62 end })\n";
    assert_budget(&format!("{huge_len}table.insert(t, 1, 'x')"));
    assert_budget(&format!("{huge_len}table.remove(t, 1)"));
    // `__index` is a C function that returns "" without running an instruction.
    assert_budget("local t = setmetatable({}, { __index = table.concat })\ntable.concat(t, '', 1, 1e15)");
    assert_budget(
        "local t = setmetatable({}, { __len = function() return 2^31 - 2 end, __index = rawlen })\ntable.sort(t)",
    );
    assert_budget(
        "local t = setmetatable({}, { __len = function() return 2^31 - 2 end, __index = rawlen })\n\
         table.sort(t, math.ult)",
    );
    // A tree of C calls: `__index` calls `pcall`, which calls `__call`, which unpacks.
    assert_budget(
        "local t = setmetatable({}, { __len = function() return 100 end, __index = pcall, __call = table.unpack })\n\
         table.unpack(t)",
    );
    assert_attack("table.unpack({}, 1, 1e7)", "too many results to unpack");
}

#[test]
fn table_functions_still_work() {
    valid_after(
        r##"
        local t = { 5, 2, 8, 1, 9, 3 }
        table.sort(t)
        assert(table.concat(t, ",") == "1,2,3,5,8,9")
        table.sort(t, function(a, b) return a > b end)
        assert(table.concat(t, ",", 2, 4) == "8,5,3")
        local words = { "pear", "Apple", "fig" }
        table.sort(words, function(a, b) return a:lower() < b:lower() end)
        assert(table.concat(words, " ") == "Apple fig pear")
        table.insert(t, 7) table.insert(t, 1, 0)
        assert(t[1] == 0 and t[#t] == 7 and #t == 8)
        assert(table.remove(t) == 7 and table.remove(t, 1) == 0 and #t == 6)
        assert(table.concat(table.move({ 1, 2, 3 }, 1, 3, 2), ",") == "1,1,2,3")
        assert(table.concat(table.move({ 1, 2, 3 }, 2, 3, 1, { 9, 9, 9 }), ",") == "2,3,9")
        assert(select("#", table.unpack({ 1, nil, 3 }, 1, 3)) == 3)
        local a, b = table.unpack({ "x", "y" })
        assert(a == "x" and b == "y")
        local packed = table.pack(1, nil, 3)
        assert(packed.n == 3)
        assert(table.concat({}) == "" and table.concat({ 1, 2.5, "x" }) == "12.5x")
        -- Metamethods are honoured as Lua's own functions honour them.
        local backing = { "a", "b", "c" }
        local proxy = setmetatable({}, {
            __index = backing,
            __newindex = backing,
            __len = function() return #backing end,
        })
        table.insert(proxy, "d")
        assert(table.concat(proxy, "") == "abcd" and backing[4] == "d")
        table.sort(proxy, function(x, y) return x > y end)
        assert(table.concat(backing, "") == "dcba")
        -- Errors read as Lua's.
        local ok, err = pcall(table.concat, { 1, {}, 3 })
        assert(err:find("invalid value %(table%) at index 2 in table for 'concat'"), err)
        ok, err = pcall(table.insert, { 1 }, 5, 2)
        assert(err:find("bad argument #2 to 'insert' %(position out of bounds%)"), err)
        ok, err = pcall(table.insert, { 1 }, 1, 2, 3)
        assert(err:find("wrong number of arguments to 'insert'"), err)
        ok, err = pcall(table.sort, { 5, 4, 3, 2, 1, 6, 7, 8, 9, 10 }, function() return true end)
        assert(err:find("invalid order function for sorting"), err)
        ok, err = pcall(table.sort, { 1, "x" })
        assert(err:find("attempt to compare"), err)
        ok, err = pcall(table.insert, nil, 1)
        assert(err:find("bad argument #1 to 'insert' %(table expected, got nil%)"), err)
        "##,
    );
    // Errors raised by the table functions carry the script's line, as Lua's do.
    let e = errors("local t = {}\ntable.insert(t, 1, 2, 3)\nreturn pipeline.define {}");
    assert_error(&e, &["2: : wrong number of arguments to 'insert'"]);
    let e = errors("local t = {}\n\ntable.concat({ 1, {} })\nreturn pipeline.define {}");
    assert_error(&e, &["3: : invalid value (table) at index 2 in table for 'concat'"]);
    let e =
        errors("table.sort({ 5, 4, 3, 2, 1, 6, 7, 8, 9, 10 }, function() return true end)\nreturn pipeline.define {}");
    assert_error(&e, &["1: : invalid order function for sorting"]);
}

#[test]
fn long_sorts_and_concats_are_fast_enough() {
    valid_after(
        r#"
        local t = {}
        for i = 1, 20000 do t[i] = (i * 7919) % 20011 end
        table.sort(t)
        for i = 2, #t do assert(t[i - 1] <= t[i]) end
        local s = {}
        for i = 1, 20000 do s[i] = tostring(i) end
        assert(#table.concat(s, ",") == 108893)
        "#,
    );
}

/// Single instructions and C calls whose work is proportional to a long string: the hook
/// checks the clock every few instructions and before every call.
#[test]
fn long_string_operations_stop_with_the_budget() {
    let long = "local a, b = string.rep('x', 3e6), string.rep('x', 3e6)\n";
    assert_budget(&format!("{long}while true do local _ = a < b end"));
    assert_budget(&format!("{long}while true do local _ = a == b .. '' end"));
    assert_budget(&format!("{long}while true do local _ = a:upper() end"));
    assert_budget(&format!("{long}while true do local _ = a:find(b, 1, true) end"));
}

#[test]
fn deep_recursion_ends_cleanly() {
    assert_memory("local function f(n) return f(n + 1) + 1 end f(1)");
    assert_budget("local function f() return pcall(f) end while true do f() end");
    assert_attack("local s = string.rep('{', 1e5) assert(load('return ' .. s))()", "C stack overflow");
}

#[test]
fn pathological_patterns_are_bounded() {
    assert_budget("string.find(string.rep('a', 3000), '.-.-.-.-.-.-b')");
    assert_budget("local s = string.rep('a', 3000) s:match('.-.-.-.-.-.-b')");
    assert_budget("string.gsub(string.rep('a', 3000), '.-.-.-.-.-.-b', '')");
    // A plain search compares candidates; a long needle of repeated bytes is the worst case.
    assert_budget(
        "local s, p = string.rep('a', 4e6), string.rep('a', 2e6) .. 'b'\n\
         while true do s:find(p, 1, true) end",
    );
}

/// Each remaining C function's work is proportional to memory the script already paid
/// for, or capped; the ones that parse or format long texts have a length limit.
#[test]
fn long_texts_for_c_functions_are_capped() {
    assert_attack("load(string.rep('x = 1 ', 1e6))", "exceeds the sandbox's limit of 1048576 bytes for a chunk");
    assert_attack("os.date(string.rep('%c', 1e5))", "exceeds the sandbox's limit of 256 bytes for a date format");
    valid_after("assert(load('return 1')() == 1 and #os.date('%Y-%m-%d') == 10)");
}

#[test]
fn host_libraries_are_absent() {
    for (code, global) in
        [("io.open('/etc/passwd')", "io"), ("debug.sethook()", "debug"), ("package.loadlib('x', 'y')", "package")]
    {
        assert_attack(code, &format!("attempt to index a nil value (global '{global}')"));
    }
    for code in ["dofile('/etc/passwd')", "loadfile('/etc/passwd')"] {
        assert_attack(code, "attempt to call a nil value");
    }
    // `require` serves only declared plugins, and only inside a stage (see `rivet_core::plugin`).
    assert_attack("require('os')", "plugins are loaded inside a stage's script, not while the pipeline is defined");
}

#[test]
fn os_offers_only_the_clock() {
    let marker = std::env::temp_dir().join(format!("rivet-sandbox-{}", std::process::id()));
    let code = format!("os.execute('touch {}')", marker.display());
    assert_attack(&code, "attempt to call a nil value (field 'execute')");
    assert!(!marker.exists(), "the sandbox touched the host");
    for field in ["remove", "rename", "exit", "getenv", "tmpname", "setlocale"] {
        assert_attack(&format!("os.{field}('x')"), &format!("attempt to call a nil value (field '{field}')"));
    }
    valid_after("assert(type(os.time()) == 'number' and type(os.clock()) == 'number' and os.date('%Y') ~= nil)");
}

#[test]
fn binary_chunks_and_dump_are_refused() {
    assert_attack("local f = string.dump(function() end)", "attempt to call a nil value (field 'dump')");
    assert_attack("local f, e = load('\\27Lua\\84\\0') assert(f, e)", "binary chunks are not allowed");
    assert_attack("load(function() return nil end)", "only text chunks are allowed");
    // Text chunks still load, with an environment of the script's choosing.
    valid_after("local f = load('return x + 1', 'chunk', 't', { x = 41 })\nassert(f() == 42)");
}

#[test]
fn garbage_collector_controls_are_refused() {
    assert_attack("collectgarbage('stop')", "collectgarbage('stop') is not allowed");
    valid_after("assert(collectgarbage('count') > 0)");
}

#[test]
fn attacks_inside_stage_definitions_are_reported_with_the_file() {
    let e = errors("local t = nil\nreturn pipeline.define { name = t.x }");
    assert_error(&e, &["2: : attempt to index a nil value"]);
}
