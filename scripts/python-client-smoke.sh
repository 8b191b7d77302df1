#!/usr/bin/env bash
# Runs the Python example client (examples/clients/python) against a real orchestrator and
# runner (the built binaries, SQLite, podman): it must validate, create, launch and follow
# examples/hello.lua to success, and report an invalid pipeline with file and line.
# Needs: python3 with venv, the binaries in $CARGO_TARGET_DIR/debug (cargo build first).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target=${CARGO_TARGET_DIR:-target}/debug
work=$(mktemp -d)
venv=${RIVET_PY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/rivet/pyvenv}
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import grpc, grpc_tools' 2>/dev/null; then
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv" || { apt-get install -y -q python3-venv >/dev/null && python3 -m venv "$venv"; }
  "$venv/bin/pip" install -q -r examples/clients/python/requirements.txt
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RIVET_LISTEN=127.0.0.1:$port RIVET_DATABASE_URL="sqlite://$work/rivet.db?mode=rwc" RUST_LOG=warn \
  "$target/rivet-orchestrator" &
pids+=($!)
RIVET_RUNNER_ORCHESTRATOR_URL=http://127.0.0.1:$port RIVET_RUNNER_STATE_DIR=$work/runner \
  RIVET_RUNNER_EXECUTOR__WORKSPACE_ROOT=$work/workspaces RIVET_RUNNER_EXECUTOR__INSTANCE="\"py-$$\"" RUST_LOG=warn \
  "$target/rivet-runner" &
pids+=($!)

passed=0 failed=0
check() { # check NAME EXPECTED-EXIT PATTERN CMD...
  local name=$1 want=$2 pattern=$3 out rc=0
  shift 3
  out=$("$@" 2>&1) || rc=$?
  if [[ $rc == "$want" ]] && grep -q -- "$pattern" <<<"$out"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "python-client: $name failed (exit $rc, wanted $want and /$pattern/):" >&2
    echo "$out" >&2
  fi
}

client=("$venv/bin/python" examples/clients/python/rivet_client.py --server "127.0.0.1:$port")
for _ in $(seq 100); do "${client[@]}" --no-launch examples/hello.lua >/dev/null 2>&1 && break; sleep 0.2; done
check "hello runs" 0 "hello from rivet" "${client[@]}" examples/hello.lua
printf 'return pipeline.define {\n  name = "x",\n  stages = { { name = "a b", script = function() end } },\n}\n' >"$work/bad.lua"
check "invalid pipeline" 3 "bad.lua:3: stages\[1\].name" "${client[@]}" "$work/bad.lua"

# The same client over TLS, trusting the server's certificate through --ca-file, against
# an orchestrator with a certificate for localhost; plain text to it fails.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -addext basicConstraints=critical,CA:FALSE \
  -keyout "$work/tls-key.pem" -out "$work/tls.pem" >/dev/null 2>&1
tls_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RIVET_LISTEN=127.0.0.1:$tls_port RIVET_DATABASE_URL="sqlite://$work/rivet-tls.db?mode=rwc" RUST_LOG=warn \
  RIVET_TLS__CERT_FILE=$work/tls.pem RIVET_TLS__KEY_FILE=$work/tls-key.pem "$target/rivet-orchestrator" &
pids+=($!)
tls_client=("$venv/bin/python" examples/clients/python/rivet_client.py --server "https://localhost:$tls_port")
for _ in $(seq 100); do "${tls_client[@]}" --ca-file "$work/tls.pem" --no-launch examples/hello.lua >/dev/null 2>&1 && break; sleep 0.2; done
check "https with a CA file" 0 "created pipeline 'hello'" "${tls_client[@]}" --ca-file "$work/tls.pem" --no-launch examples/hello.lua
check "plain text to a TLS server fails" 1 "UNAVAILABLE" "$venv/bin/python" examples/clients/python/rivet_client.py \
  --server "http://localhost:$tls_port" --no-launch examples/hello.lua
echo "python-client: $passed passed, $failed failed"
((failed == 0))
