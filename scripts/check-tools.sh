#!/usr/bin/env bash
# Checks, before `just test` or `just lint` starts, that every tool the recipe needs is
# installed, so that a new machine fails in the first second with the commands that fix
# it instead of twenty minutes into the build. It lists every missing tool, each with the
# command that installs it, then one command line that installs them all. It installs
# nothing itself (.ci/run does, on a CI machine).
#
# Usage: scripts/check-tools.sh test|lint    Exit status: 0 when nothing is missing, 1 when
# something is, 2 for a wrong argument.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

recipe=${1:-}
case "$recipe" in
  test | lint) ;;
  *) echo "usage: $0 test|lint" >&2; exit 2 ;;
esac

missing=()  # "what: command" lines, in the order found
apt=()      # Debian packages to install
rust=()     # installs Rust itself, before any `cargo install`
cargo=()    # crates for `cargo install --locked`
other=()    # the remaining commands, which may need the packages above

sudo=""
[[ $(id -u) == 0 ]] || sudo="sudo "

has() { command -v "$1" >/dev/null 2>&1; }

need_apt() { # need_apt WHAT PACKAGE...
  local what=$1
  shift
  missing+=("$what: ${sudo}apt-get install $*")
  apt+=("$@")
}

need_cargo() { # need_cargo WHAT CRATE
  missing+=("$1: cargo install --locked $2")
  cargo+=("$2")
}

need_other() { # need_other WHAT COMMAND
  missing+=("$1: $2")
  other+=("$2")
}

if ! has cargo; then
  rust+=("curl --proto '=https' -sSf https://sh.rustup.rs | sh -s -- -y --component rustfmt,clippy && . \"\$HOME/.cargo/env\"")
  missing+=("cargo (Rust): ${rust[0]}")
fi
# The Lua stub check runs in both recipes.
has emmylua_check || need_cargo emmylua_check emmylua_check

if [[ $recipe == test ]]; then
  if ! has cargo-nextest; then
    need_cargo cargo-nextest cargo-nextest
  elif has cargo && ! cargo nextest show-config version >/dev/null 2>&1; then
    # .config/nextest.toml names the oldest nextest that honours its settings.
    version=$(cargo nextest --version 2>/dev/null || true)
    need_cargo "cargo-nextest (newer than ${version%%$'\n'*})" cargo-nextest
  fi
  has podman || need_apt podman podman
  has runc || need_apt runc runc
  # deploy/test-image/build.sh builds the test images from a statically linked busybox.
  busybox=${BUSYBOX:-/bin/busybox}
  if [[ ! -x $busybox ]] || { has ldd && ldd "$busybox" >/dev/null 2>&1; }; then
    need_apt "a static busybox at $busybox" busybox-static
  fi
  # scripts/test-services.sh starts PostgreSQL and Redis unless these variables point at
  # running ones.
  if [[ -z ${RIVET_TEST_DATABASE_URL:-} ]]; then
    if ! has psql || ! has pg_isready; then
      need_apt "PostgreSQL (psql, pg_isready and a server)" postgresql
    elif ! pg_isready -q -h 127.0.0.1 -p 5432 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
      need_apt "a PostgreSQL server (none answers on 127.0.0.1:5432)" postgresql
    fi
  fi
  if [[ -z ${RIVET_TEST_REDIS_URL:-} ]]; then
    if ! has redis-cli || { ! has redis-server && [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) != PONG ]]; }; then
      need_apt "Redis (redis-cli and a server)" redis-server
    fi
  fi
  # scripts/python-client-smoke.sh makes a virtualenv for the Python example client.
  if ! has python3 || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    need_apt "python3 with venv" python3-venv
  fi
fi

if [[ $recipe == lint ]] && has cargo; then
  cargo fmt --version >/dev/null 2>&1 || need_other rustfmt "rustup component add rustfmt"
  cargo clippy --version >/dev/null 2>&1 || need_other clippy "rustup component add clippy"
fi
if [[ $recipe == lint ]] && ! has buf; then
  has npm || need_apt "npm (for buf)" npm
  need_other buf "npm install -g @bufbuild/buf"
fi

((${#missing[@]} > 0)) || exit 0

{
  echo "just $recipe: missing tools; install them, then run it again:"
  printf '  %s\n' "${missing[@]}"
  all=()
  ((${#apt[@]} == 0)) || all+=("${sudo}apt-get install -y ${apt[*]}")
  all+=(${rust[@]+"${rust[@]}"})
  ((${#cargo[@]} == 0)) || all+=("cargo install --locked ${cargo[*]}")
  all+=(${other[@]+"${other[@]}"})
  if ((${#all[@]} > 1 || ${#missing[@]} > 1)); then
    line=${all[0]}
    for command in "${all[@]:1}"; do line+=" && $command"; done
    echo "all at once:"
    echo "  $line"
  fi
} >&2
exit 1
