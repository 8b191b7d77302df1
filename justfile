# Every routine task of the project. `just` lists them.
set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# First a check that every tool is installed (it names the command for what is missing),
# the Lua stub check, the podman smoke test, then the Rust test suite against the local
# PostgreSQL and Redis, which scripts/test-services.sh starts when they are not running.

# Run every test.
test:
    #!/usr/bin/env bash
    set -euo pipefail
    scripts/check-tools.sh test
    scripts/check-tools-test.sh
    source scripts/test-services.sh
    scripts/lua-check.sh
    scripts/podman-smoke.sh
    cargo nextest run --workspace --profile "${NEXTEST_PROFILE:-default}"
    cargo build -q --bins -p rivet-orchestrator -p rivet-runner
    scripts/python-client-smoke.sh

# Check formatting, clippy warnings, the protobuf API and the Lua stubs; changes nothing.
lint:
    scripts/check-tools.sh lint
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    buf lint
    scripts/lua-check.sh

# Run the benchmarks: rivet-core's criterion benches, dispatch and log ingest on PostgreSQL +
# Redis and SQLite (started when missing), then the executor on podman. They print, never assert.
bench:
    #!/usr/bin/env bash
    set -euo pipefail
    source scripts/test-services.sh
    deploy/test-image/build.sh
    cargo bench -p rivet-core
    cargo bench -p rivet-evaluator
    cargo bench -p rivet-orchestrator --bench dispatch
    cargo bench -p rivet-runner --bench executor

# Build the local container images the tests and examples use (add --force to rebuild).
test-image *args:
    deploy/test-image/build.sh {{ args }}

# Validate every example pipeline with `rivet pipeline check`.
check:
    cargo run -q -p rivet-cli --bin rivet -- pipeline check examples/*.lua

# Run a real pipeline: `rivet run examples/hello.lua` on the embedded mode (SQLite,
# in-memory coordination, a runner in the same process, podman), building the local test
# image first if it is missing.
demo:
    deploy/test-image/build.sh
    cargo run -q -p rivet-cli --bin rivet -- run examples/hello.lua

# Keep an embedded Rivet server and runner up on 127.0.0.1:7420 for the other commands.
dev *args:
    deploy/test-image/build.sh
    cargo run -q -p rivet-cli --bin rivet -- dev {{ args }}
