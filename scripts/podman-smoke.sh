#!/usr/bin/env bash
# Smoke test of the container runtime that Rivet's runner drives: podman must start the
# local test images (deploy/test-image/build.sh builds them when missing or stale) and
# return their output. It catches a broken podman setup (runtime, ulimits, storage) in a
# second, before a Rust test fails on it in a less obvious way.
#
# Usage: scripts/podman-smoke.sh    Exit status: 0 when every check passed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

deploy/test-image/build.sh >/dev/null

passed=0
failed=0

# check NAME EXPECTED COMMAND... runs COMMAND and compares its standard output with EXPECTED.
check() {
  local name=$1 expected=$2 out
  shift 2
  if out=$("$@" 2>&1) && [[ $out == "$expected" ]]; then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name: expected '$expected', got: $out"
    failed=$((failed + 1))
  fi
}

run() { podman run --rm --pull=never "$@"; }

check "rivet-test runs echo through its shell image" hello \
  run localhost/rivet-test:latest echo hello

# The runner must work with images that have no shell: a program run by absolute path
# answers, and the image really has no /bin/sh (`test -e` exits 1, podman's own errors are
# 125 to 127).
noshell() {
  run localhost/rivet-noshell:latest /bin/busybox echo ok || return
  local rc=0
  run localhost/rivet-noshell:latest /bin/busybox test -e /bin/sh || rc=$?
  if [[ $rc != 1 ]]; then
    echo "test -e /bin/sh exited $rc, want 1 (no /bin/sh)"
    return 1
  fi
}
check "rivet-noshell runs /bin/busybox echo ok and has no /bin/sh" ok noshell

echo "podman-smoke: $passed passed, $failed failed"
[[ $failed == 0 ]]
