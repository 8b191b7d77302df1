#!/usr/bin/env bash
# Measures what a user waits for with `rivet run examples/hello.lua`: the time from the
# command's start to its first log line, and to its end, next to the time of a bare
# `podman run --rm localhost/rivet-test:latest echo hi` on the same machine, in the same run.
#
# Usage: scripts/bench-run.sh [RUNS]     (default 5 runs of each; medians are printed)
# Environment: RIVET is the `rivet` binary to measure (default: a release build made here
# with cargo, in $CARGO_TARGET_DIR or target/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs=${1:-5}
deploy/test-image/build.sh >/dev/null

if [[ -z ${RIVET:-} ]]; then
  cargo build -q --release -p rivet-cli --bin rivet
  RIVET=${CARGO_TARGET_DIR:-target}/release/rivet
fi

now_ms() { echo $(($(date +%s%N) / 1000000)); }

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

# One `rivet run`: prints "first_line_ms hello_line_ms total_ms". The first line is the
# stage's header, which comes with the stage's first log line (a `log.info` before any
# container starts); the hello line is the output of the stage's container.
measure_rivet() {
  local start first="" hello="" line
  start=$(now_ms)
  while IFS= read -r line; do
    [[ -n $first ]] || first=$(now_ms)
    [[ $line == "hello from rivet" ]] && hello=$(now_ms)
  done < <(NO_COLOR=1 "$RIVET" run examples/hello.lua 2>/dev/null)
  if [[ -z $hello ]]; then
    echo "bench-run: rivet run did not print the hello line" >&2
    exit 1
  fi
  echo "$((first - start)) $((hello - start)) $(($(now_ms) - start))"
}

# One `podman run`: prints "total_ms".
measure_podman() {
  local start
  start=$(now_ms)
  [[ $(podman run --rm --pull=never localhost/rivet-test:latest echo hi) == hi ]]
  echo "$(($(now_ms) - start))"
}

# A warm-up of each, not counted: the first run pays for caches.
measure_rivet >/dev/null
measure_podman >/dev/null

first=() hello=() total=() podman=()
for ((i = 0; i < runs; i++)); do
  read -r f h t < <(measure_rivet)
  first+=("$f") hello+=("$h") total+=("$t")
  podman+=("$(measure_podman)")
done

echo "runs: $runs (medians; binary: $RIVET)"
echo "rivet run examples/hello.lua, start to first log line: $(printf '%s\n' "${first[@]}" | median) ms"
echo "rivet run examples/hello.lua, start to the hello line:  $(printf '%s\n' "${hello[@]}" | median) ms"
echo "rivet run examples/hello.lua, start to exit:           $(printf '%s\n' "${total[@]}" | median) ms"
echo "podman run --rm rivet-test echo hi:                    $(printf '%s\n' "${podman[@]}" | median) ms"
