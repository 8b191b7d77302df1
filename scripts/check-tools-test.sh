#!/usr/bin/env bash
# Tests scripts/check-tools.sh on made-up machines: a PATH with none of the tools must get
# every install command and exit 1; a PATH where every tool answers (stand-ins that only
# exit 0) must pass silently; a nextest older than .config/nextest.toml requires must be
# named. `just test` runs it.
#
# Usage: scripts/check-tools-test.sh    Exit status: 0 when every check passed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
bash=$(command -v bash)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
pass() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }

# The commands check-tools.sh itself uses, on every machine; nothing else is on a bare PATH.
bare=$work/bare
mkdir -p "$bare"
for tool in env id dirname; do
  ln -s "$(command -v "$tool")" "$bare/$tool"
done

# stub DIR NAME [EXIT] writes a command NAME into DIR that prints nothing and exits EXIT.
stub() { printf '#!%s\nexit %s\n' "$bash" "${3:-0}" >"$1/$2" && chmod +x "$1/$2"; }

# run RECIPE PATH [VAR=VALUE...] runs check-tools.sh with only PATH, and sets $rc and $out.
run() {
  local recipe=$1 path=$2
  shift 2
  rc=0
  out=$(env -i PATH="$path" HOME="$work" "$@" "$bash" "$root/scripts/check-tools.sh" "$recipe" 2>&1) || rc=$?
}

# expect NAME TEXT checks that the last run printed TEXT.
expect() {
  if [[ $out == *"$2"* ]]; then pass "$1"; else fail "$1: no '$2' in: $out"; fi
}

# 1. Nothing installed: every tool is named with its command, and one line installs all.
run test "$bare" BUSYBOX="$work/none"
[[ $rc == 1 ]] && pass "a bare machine fails just test" || fail "a bare machine: exit $rc, want 1"
for command in "cargo install --locked emmylua_check" "cargo install --locked cargo-nextest" \
  "apt-get install podman" "apt-get install runc" "apt-get install busybox-static" \
  "apt-get install postgresql" "apt-get install redis-server" "apt-get install python3-venv" \
  "https://sh.rustup.rs"; do
  expect "a bare machine is told: $command" "$command"
done
expect "one line installs everything for just test" \
  "apt-get install -y podman runc busybox-static postgresql redis-server python3-venv && "
expect "the cargo installs come in one command" "cargo install --locked emmylua_check cargo-nextest"

run lint "$bare"
[[ $rc == 1 ]] && pass "a bare machine fails just lint" || fail "just lint on a bare machine: exit $rc, want 1"
expect "just lint asks for buf" "npm install -g @bufbuild/buf"
expect "just lint asks for npm first" "apt-get install -y npm"
expect "just lint asks for emmylua_check" "cargo install --locked emmylua_check"

# 2. Every tool there (stand-ins): nothing is printed and both recipes may go on.
full=$work/full
mkdir -p "$full"
for tool in env id dirname; do ln -s "$(command -v "$tool")" "$full/$tool"; done
for tool in cargo cargo-nextest emmylua_check podman runc psql pg_isready redis-cli redis-server python3 buf npm; do
  stub "$full" "$tool"
done
stub "$work" busybox
for recipe in test lint; do
  run "$recipe" "$full" BUSYBOX="$work/busybox"
  [[ $rc == 0 && -z $out ]] && pass "a complete machine passes just $recipe" ||
    fail "a complete machine, just $recipe: exit $rc, output: $out"
done
# With the services' URLs set, neither PostgreSQL nor Redis is needed.
for tool in psql pg_isready redis-cli redis-server; do rm "$full/$tool"; done
run test "$full" BUSYBOX="$work/busybox" RIVET_TEST_DATABASE_URL=postgres://db RIVET_TEST_REDIS_URL=redis://r
[[ $rc == 0 ]] && pass "given service URLs, no local PostgreSQL or Redis is needed" ||
  fail "given service URLs: exit $rc, output: $out"

# 3. A nextest too old for .config/nextest.toml (`show-config version` fails) is named.
printf '#!%s\n[[ $1 == nextest && $2 == show-config ]] && exit 92\necho "cargo-nextest 0.9.100"\n' "$bash" >"$full/cargo"
run test "$full" BUSYBOX="$work/busybox" RIVET_TEST_DATABASE_URL=postgres://db RIVET_TEST_REDIS_URL=redis://r
[[ $rc == 1 ]] && pass "an old nextest fails just test" || fail "an old nextest: exit $rc, want 1"
expect "an old nextest is named, with the command that updates it" \
  "cargo-nextest (newer than cargo-nextest 0.9.100): cargo install --locked cargo-nextest"

echo "check-tools-test: $passed passed, $failed failed"
((failed == 0))
