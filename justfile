# Every routine task of the project. `just` lists them.
set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# The Lua stub check, the podman smoke test, then the Rust test suite against the local
# PostgreSQL and Redis, which scripts/test-services.sh starts when they are not running.

# Run every test.
test:
    #!/usr/bin/env bash
    set -euo pipefail
    source scripts/test-services.sh
    scripts/lua-check.sh
    scripts/podman-smoke.sh
    cargo nextest run --workspace

# Check formatting, clippy warnings, the protobuf API and the Lua stubs; changes nothing.
lint:
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
    cargo bench -p rivet-orchestrator --bench dispatch
    cargo bench -p rivet-runner --bench executor

# Build the local container images the tests and examples use (add --force to rebuild).
test-image *args:
    deploy/test-image/build.sh {{ args }}

# Validate every example pipeline with `rivet pipeline check`.
check:
    cargo run -q -p rivet-cli --bin rivet -- pipeline check examples/*.lua

# The demo. Until `rivet run` and the embedded mode exist, it validates the examples.
demo: check

# Not available yet: `just dev` will keep an embedded Rivet server up (`rivet dev`).
dev:
    @echo "just dev: not available yet; it comes with the embedded mode (rivet dev)." >&2
    @exit 1
