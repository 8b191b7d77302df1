# shellcheck shell=bash
# Makes sure the services that Rivet's integration tests talk to are up on loopback, and
# exports where they are:
#
#   RIVET_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
#   RIVET_TEST_REDIS_URL=redis://127.0.0.1:6379
#
# Source it (`source scripts/test-services.sh`); .ci/run and `just test` do. Run on its own
# it starts the services and prints the two exports. A variable that is already set means
# "use that service": nothing is started or changed for it. Otherwise:
#
# * PostgreSQL: when nothing answers on 127.0.0.1:5432, the machine's Debian cluster for
#   port 5432 is started (pg_ctlcluster), or, when there is none, a throwaway cluster is
#   made with initdb in a temporary directory (trust authentication, 127.0.0.1:5432 only). The tests connect
#   as `postgres` without a password; when the Debian cluster asks for one and CI=true, a
#   trust rule for that user on 127.0.0.1 is added at the top of its pg_hba.conf (outside CI
#   the script says how and stops, rather than change a developer's database).
# * Redis: when nothing answers on 127.0.0.1:6379, redis-server is started as a daemon on
#   loopback that keeps nothing on disk.
#
# It is idempotent and takes a few milliseconds when both services already run.

_rivet_log() { echo "test-services: $*" >&2; }

# _rivet_wait CMD... retries CMD for up to 30 seconds.
_rivet_wait() {
  local _
  for _ in $(seq 60); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}

# _rivet_as_postgres CMD... runs CMD as the postgres user when we are root (PostgreSQL
# refuses to run as root), else as ourselves.
_rivet_as_postgres() {
  if [[ $(id -u) == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

_rivet_pg_url=postgres://postgres@127.0.0.1:5432/postgres

_rivet_pg_connects() {
  psql -w -X -q -At -d "$_rivet_pg_url" -c 'select 1' >/dev/null 2>&1
}

_rivet_start_throwaway_postgres() {
  local bindir dir
  bindir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1)
  if [[ ! -x $bindir/initdb ]]; then
    _rivet_log "no PostgreSQL server found: apt-get install postgresql"
    return 1
  fi
  dir=$(mktemp -d /tmp/rivet-postgres.XXXXXX)
  [[ $(id -u) != 0 ]] || chown postgres: "$dir"
  _rivet_log "creating a throwaway PostgreSQL cluster in $dir"
  _rivet_as_postgres "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust >"$dir/initdb.log" 2>&1 || {
    _rivet_log "initdb failed, see $dir/initdb.log"
    return 1
  }
  # TLS on, like Debian's own cluster, so the tests of `sslmode=require` hold here too.
  local ssl=""
  if command -v openssl >/dev/null; then
    _rivet_as_postgres openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
      -keyout "$dir/data/server.key" -out "$dir/data/server.crt" >/dev/null 2>&1 && ssl="-c ssl=on"
  fi
  _rivet_as_postgres "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=5432 -c unix_socket_directories=$dir $ssl" start >/dev/null || {
    _rivet_log "PostgreSQL did not start, see $dir/server.log"
    return 1
  }
}

# _rivet_trust_local_postgres VERSION NAME lets `postgres` connect over 127.0.0.1 without a
# password on the Debian cluster VERSION/NAME.
_rivet_trust_local_postgres() {
  local hba=/etc/postgresql/$1/$2/pg_hba.conf
  local rule='host all postgres 127.0.0.1/32 trust # added by rivet scripts/test-services.sh'
  if [[ ${CI:-} != true ]]; then
    _rivet_log "PostgreSQL asks postgres@127.0.0.1 for a password; either set RIVET_TEST_DATABASE_URL," \
      "or put this line first in $hba and reload: $rule"
    return 1
  fi
  _rivet_log "CI: trusting postgres@127.0.0.1 in $hba"
  sed -i "1i $rule" "$hba" && pg_ctlcluster --skip-systemctl-redirect "$1" "$2" reload
}

_rivet_start_postgres() {
  # The Debian cluster set up for port 5432, if any (the newest when there are several). A
  # cluster created while 5432 was taken gets another port and is left alone.
  local cluster version name
  cluster=$(pg_lsclusters -h 2>/dev/null | awk '$3 == 5432 { print $1, $2 }' | sort -V | tail -n 1)
  read -r version name <<<"$cluster"
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if [[ -n $cluster ]]; then
      _rivet_log "starting the PostgreSQL cluster $version/$name"
      pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start || return 1
    else
      _rivet_start_throwaway_postgres || return 1
    fi
    _rivet_wait pg_isready -h 127.0.0.1 -p 5432 || {
      _rivet_log "PostgreSQL does not answer on 127.0.0.1:5432"
      return 1
    }
  fi
  _rivet_pg_connects && return 0
  if [[ -n $cluster ]] && _rivet_trust_local_postgres "$version" "$name" && _rivet_wait _rivet_pg_connects; then
    return 0
  fi
  _rivet_log "cannot connect to $_rivet_pg_url"
  return 1
}

_rivet_redis_answers() {
  [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]
}

_rivet_start_redis() {
  _rivet_redis_answers && return 0
  _rivet_log "starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/rivet-test-redis.log >/dev/null || return 1
  _rivet_wait _rivet_redis_answers || {
    _rivet_log "Redis does not answer on 127.0.0.1:6379, see /tmp/rivet-test-redis.log"
    return 1
  }
}

rivet_test_services() {
  if [[ -z ${RIVET_TEST_DATABASE_URL:-} ]]; then
    _rivet_start_postgres || return 1
    export RIVET_TEST_DATABASE_URL=$_rivet_pg_url
  fi
  if [[ -z ${RIVET_TEST_REDIS_URL:-} ]]; then
    _rivet_start_redis || return 1
    export RIVET_TEST_REDIS_URL=redis://127.0.0.1:6379
  fi
}

if (return 0 2>/dev/null); then
  rivet_test_services
else
  set -euo pipefail
  rivet_test_services
  echo "export RIVET_TEST_DATABASE_URL=$RIVET_TEST_DATABASE_URL"
  echo "export RIVET_TEST_REDIS_URL=$RIVET_TEST_REDIS_URL"
fi
