#!/usr/bin/env bash
# Type-checks the example pipelines against the annotation stubs in lua-stubs/ with
# emmylua_check (configured by .emmyrc.json at the repository root), then proves that the
# check has teeth: a set of small broken pipelines must each get the diagnostic expected.
# Any diagnostic on an example fails, hints included.
#
# What emmylua_check (0.25) catches with these stubs:
#   * wrong types of fields in pipeline.define{...}, builder arguments, stages, inputs,
#     runner tags and process.run options, including string enums (`type = "strng"`,
#     `stdout_level = "verbose"`) and nested tables;
#   * missing required fields (a stage without `script`, a tag without `value`);
#   * misspelled functions and methods (`log.inf`, `:bild()`) and result fields (`r.stdot`);
#   * fields added after the fact to a value of a stub class (`stage.contianer = "x"` on
#     what `pipeline.stage` returned, `b.extra = 1` on a builder): the classes are `(exact)`.
#     Adding to a module table itself (`log.custom = f`) is not flagged;
#   * a possibly-nil value used as a string (`log.info(input.get("x"))` without a default);
#   * modules that do not exist (`cache.save`), and misspelled functions of the plugins
#     stubbed in lua-stubs (`require("git").clon`).
# What it does not catch:
#   * unknown keys in a table literal, such as `{ name = "a", contianer = "x", ... }`:
#     `(exact)` only forbids adding fields later, and emmylua_check ignores extra keys in a
#     table constructor (its table checks look up declared fields only; an index signature
#     such as `[string] never` would also reject the declared ones). Only the pipeline
#     validation of `rivet pipeline check` (`just check`) can reject unknown fields;
#   * globals the sandbox removes (`io`, `os.execute`, `debug`, `load` of bytecode): the
#     checker always loads the full standard library, so only the sandbox itself refuses them;
#   * reliably, a wrong type in a nested table literal when an enclosing literal has a key
#     of the same name: in `pipeline.define{ name = "x", stages = { { name = 1, ... } } }` the
#     stage's `name = 1` is flagged in about half of the runs only (an emmylua_check 0.25.1
#     bug; `container = 1` in the same place, or `name = 1` in `:stage{...}`, is always
#     flagged). The cases below avoid such shadowing so that they are deterministic;
#   * anything that depends on values: duplicate stage names, a default outside `options`, a
#     runtime error in a script.
#
# Usage: scripts/lua-check.sh    Exit status: 0 when every check passed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"

if ! command -v emmylua_check >/dev/null; then
  echo "lua-check: emmylua_check is not installed (cargo install --locked emmylua_check)" >&2
  exit 1
fi

passed=0
failed=0
pass() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }

# emmylua DIR checks the Lua files under DIR with the repository's configuration and
# prints a line "<path> TAB <diagnostic codes, space-separated>" for each file checked (the
# codes are empty for a clean file). It reads the JSON report one top-level object at a
# time, whatever the order of its keys.
emmylua() {
  # Its exit status only says whether there were errors; the report is what counts, and a
  # file missing from it shows as unchecked.
  { emmylua_check --config "$root/.emmyrc.json" --output-format json "$@" 2>/dev/null || true; } |
    awk '
      /^\{/ { file = ""; codes = ""; next }
      /^  "file": / { file = $0; sub(/^  "file": "/, "", file); sub(/",?$/, "", file); next }
      /"code": / { c = $0; sub(/.*"code": "/, "", c); sub(/",?$/, "", c); codes = codes " " c; next }
      /^\}/ { print file "\t" codes }
    '
}

# codes_for REPORT PATH prints the codes line of PATH in REPORT, or "unchecked".
codes_for() {
  awk -F '\t' -v path="$2" '$1 == path { print ($2 == "" ? "clean" : $2); found = 1 }
    END { if (!found) print "unchecked" }' <<<"$1"
}

# 1. Every example is free of diagnostics.
examples=(examples/*.lua examples/plugins/*.lua)
report=$(emmylua examples)
for example in "${examples[@]}"; do
  codes=$(codes_for "$report" "$root/$example")
  case "$codes" in
    clean) pass "$example has no diagnostics" ;;
    unchecked) fail "$example was not checked" ;;
    *) fail "$example has diagnostics:$codes" ;;
  esac
done
if ((failed > 0)); then
  emmylua_check --config "$root/.emmyrc.json" examples || true
fi

# 2. Each broken pipeline gets the expected diagnostic. Cases are separated by lines
# "== NAME EXPECTED-CODE"; each becomes a file of its own in a scratch workspace.
cases=$(cd "$(mktemp -d)" && pwd -P)
trap 'rm -rf "$cases"' EXIT
awk -v dir="$cases" '
  /^== / { file = dir "/" $2 "." $3 ".lua"; next }
  { print > file }
' <<'LUA'
== stage-name-not-a-string assign-type-mismatch
return pipeline.builder():name("x"):stage({ name = 1, script = function() end }):build()
== stage-container-not-a-string assign-type-mismatch
return pipeline.define({ name = "x", stages = { { name = "a", container = 1, script = function() end } } })
== stage-without-script missing-fields
return pipeline.define({ name = "x", stages = { { name = "build" } } })
== input-type-misspelled assign-type-mismatch
return pipeline.define({
    name = "x",
    inputs = { branch = { type = "strng" } },
    stages = { { name = "a", script = function() end } },
})
== timeout-not-number-or-string assign-type-mismatch
return pipeline.define({ name = "x", stages = { { name = "a", timeout = true, script = function() end } } })
== runner-tag-without-value missing-fields
return pipeline.define({
    name = "x",
    runner = { { key = "os" } },
    stages = { { name = "a", script = function() end } },
})
== builder-method-misspelled undefined-field
return pipeline.builder():name("x"):stage({ name = "a", script = function() end }):bild()
== builder-tag-not-a-table param-type-mismatch
return pipeline.builder():name("x"):tag("os"):stage({ name = "a", script = function() end }):build()
== process-args-not-a-list assign-type-mismatch
process.run({ cmd = "echo", args = "hello" })
== process-log-level-unknown assign-type-mismatch
process.run({ cmd = "echo", stdout_level = "verbose" })
== process-result-field-misspelled undefined-field
local r = process.run({ cmd = "echo", capture_stdout = true })
log.info(r.stdot)
== log-function-misspelled undefined-field
log.inf("hello")
== output-value-is-a-table param-type-mismatch
output.set("result", { 1, 2 })
== optional-input-used-as-string param-type-mismatch
log.info(input.get("branch"))
== field-injected-into-stage inject-field
local stage = pipeline.stage({ name = "a", script = function() end })
stage.contianer = "x"
return pipeline.define({ name = "x", stages = { stage } })
== module-that-does-not-exist undefined-global
cache.save("x")
== fs-path-not-a-string param-type-mismatch
fs.read({})
== http-method-unknown assign-type-mismatch
http.request({ url = "https://example.com", method = "FETCH" })
== http-response-field-misspelled undefined-field
local r = http.get("https://example.com")
log.info(r.bdy)
== plugin-function-misspelled undefined-field
local git = require("git")
git.clon({ url = "https://example.com/x.git", dir = "x" })
LUA

report=$(emmylua "$cases")
for file in "$cases"/*.lua; do
  base=$(basename "$file" .lua)
  name=${base%.*}
  code=${base##*.}
  codes=$(codes_for "$report" "$file")
  if [[ " $codes " == *" $code "* ]]; then
    pass "broken pipeline '$name' is flagged with $code"
  else
    fail "broken pipeline '$name' is not flagged with $code (got: $codes)"
  fi
done

echo "lua-check: $passed passed, $failed failed"
((failed == 0))
