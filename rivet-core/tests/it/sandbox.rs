//! A catalogue of sandbox escapes and resource attacks. Each must end in a clear error,
//! quickly, with no effect on the host.

use std::time::Duration;

use rivet_core::Limits;
use rivet_core::sandbox::TIME_BUDGET_EXCEEDED;

use crate::support::{assert_error, errors, valid};

/// Short limits so the attacks end quickly.
const TEST_LIMITS: Limits = Limits { memory: 16 * 1024 * 1024, time: Duration::from_millis(300) };

fn attack(source: &str) -> String {
    match rivet_core::load(source, "attack.lua", TEST_LIMITS) {
        Ok(_) => panic!("the attack was not refused:\n{source}"),
        Err(err) => err.to_string(),
    }
}

fn assert_budget(source: &str) {
    let err = attack(source);
    assert!(err.contains(TIME_BUDGET_EXCEEDED), "expected the time budget to stop:\n{source}\ngot: {err}");
}

#[test]
fn infinite_loop_is_stopped() {
    assert_budget("while true do end");
    let err = attack("local x = 0\nwhile true do x = x + 1 end");
    assert!(err.starts_with("attack.lua:2: script exceeded its time budget"), "{err}");
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

#[test]
fn xpcall_handler_cannot_escape_the_hook() {
    assert_budget("xpcall(function() error('x') end, function() while true do end end)");
    // xpcall still works as a function.
    let def = valid(
        "local ok, msg = xpcall(function() error('boom', 0) end, function(m) return 'handled ' .. m end)\n\
         assert(not ok and msg == 'handled boom')\n\
         return pipeline.define { name = 'p', stages = { { name = 's', script = function() end } } }",
    );
    assert_eq!(def.name, "p");
}

#[test]
fn finalizers_and_close_handlers_are_refused() {
    let err = attack("setmetatable({}, { __gc = function() while true do end end })");
    assert!(err.contains("the `__gc` metamethod is not allowed"), "{err}");
    let err = attack("local x <close> = setmetatable({}, { __close = function() while true do end end })");
    assert!(err.contains("the `__close` metamethod is not allowed"), "{err}");
}

#[test]
fn memory_bomb_hits_the_limit() {
    let err = attack("local t = {} for i = 1, 1e9 do t[i] = i end");
    assert!(err.contains("ran out of memory (limit 16 MiB)"), "{err}");
    let err = attack("local t = {} while true do t[#t + 1] = {} end");
    assert!(err.contains("out of memory"), "{err}");
}

#[test]
fn huge_strings_hit_the_limit() {
    let err = attack("local s = string.rep('x', 1e10)");
    assert!(err.contains("out of memory") || err.contains("resulting string too large"), "{err}");
    let err = attack("local s = 'x' while true do s = s .. s end");
    assert!(err.contains("out of memory"), "{err}");
}

#[test]
fn deep_recursion_ends_cleanly() {
    let err = attack("local function f(n) return f(n + 1) + 1 end f(1)");
    assert!(err.contains("stack overflow") || err.contains("out of memory"), "{err}");
    let err = attack("local function f() return pcall(f) end while true do f() end");
    assert!(err.contains(TIME_BUDGET_EXCEEDED) || err.contains("stack overflow"), "{err}");
    let err = attack("local s = string.rep('{', 1e6) load('return ' .. s)() ");
    assert!(!err.is_empty());
}

#[test]
fn pathological_patterns_are_bounded() {
    assert_budget("string.find(string.rep('a', 3000), '.-.-.-.-.-.-b')");
    assert_budget("local s = string.rep('a', 3000) s:match('.-.-.-.-.-.-b')");
    assert_budget("string.gsub(string.rep('a', 3000), '.-.-.-.-.-.-b', '')");
}

#[test]
fn host_libraries_are_absent() {
    for (code, global) in
        [("io.open('/etc/passwd')", "io"), ("debug.sethook()", "debug"), ("package.loadlib('x', 'y')", "package")]
    {
        let err = attack(code);
        assert!(err.contains(&format!("global '{global}'")), "{code}: {err}");
    }
    for code in ["require('os')", "dofile('/etc/passwd')", "loadfile('/etc/passwd')"] {
        let err = attack(code);
        assert!(err.contains("attempt to call a nil value"), "{code}: {err}");
    }
}

#[test]
fn os_offers_only_the_clock() {
    let marker = std::env::temp_dir().join(format!("rivet-sandbox-{}", std::process::id()));
    let code = format!("os.execute('touch {}')", marker.display());
    let err = attack(&code);
    assert!(err.contains("field 'execute'"), "{err}");
    assert!(!marker.exists(), "the sandbox touched the host");
    for field in ["remove", "rename", "exit", "getenv", "tmpname", "setlocale"] {
        let err = attack(&format!("os.{field}('x')"));
        assert!(err.contains(&format!("field '{field}'")), "{field}: {err}");
    }
    valid(
        "assert(type(os.time()) == 'number' and type(os.clock()) == 'number' and os.date('%Y') ~= nil)\n\
         return pipeline.define { name = 'p', stages = { { name = 's', script = function() end } } }",
    );
}

#[test]
fn binary_chunks_and_dump_are_refused() {
    let err = attack("local f = string.dump(function() end)");
    assert!(err.contains("field 'dump'"), "{err}");
    let err = attack("local f, e = load('\\27Lua\\84\\0') assert(f, e)");
    assert!(err.contains("binary chunks are not allowed"), "{err}");
    let err = attack("load(function() return nil end)");
    assert!(err.contains("only text chunks are allowed"), "{err}");
    // Text chunks still load, with an environment of the script's choosing.
    valid(
        "local f = load('return x + 1', 'chunk', 't', { x = 41 })\nassert(f() == 42)\n\
         return pipeline.define { name = 'p', stages = { { name = 's', script = function() end } } }",
    );
}

#[test]
fn garbage_collector_controls_are_refused() {
    let err = attack("collectgarbage('stop')");
    assert!(err.contains("collectgarbage('stop') is not allowed"), "{err}");
    valid(
        "assert(collectgarbage('count') > 0)\n\
         return pipeline.define { name = 'p', stages = { { name = 's', script = function() end } } }",
    );
}

#[test]
fn attacks_inside_stage_definitions_are_reported_with_the_file() {
    let e = errors("local t = nil\nreturn pipeline.define { name = t.x }");
    assert_error(&e, &["2: : attempt to index a nil value"]);
}
