#!/usr/bin/env bash
# tests/pg/pgtmp.sh — a throwaway PostgreSQL cluster for the test suite and
# the benchmarks: initdb in a fresh temp directory, started on a free
# loopback port (no Unix socket outside that directory), stopped and deleted
# afterwards. Used by ctest's pg fixture (CMakeLists.txt) and bench/scale.
#
#   pgtmp.sh start STATE_DIR   starts a cluster; prints its URL and writes it
#                              to STATE_DIR/url (STATE_DIR/datadir names the
#                              cluster's directory). A cluster an earlier run
#                              left in STATE_DIR is stopped first.
#   pgtmp.sh stop STATE_DIR    stops it and deletes its directory.
#   pgtmp.sh createdb URL NAME creates database NAME (dropped first if it
#                              exists); prints the URL of the new database.
#   pgtmp.sh dropdb URL NAME
#
# PGTMP_FSYNC=off starts the server without fsync (the test suite: faster,
# and no test crashes the server itself); the default keeps it on, as the
# benchmarks and any real deployment do.
# The server binaries refuse to run as root: as root they run as the
# `postgres` user (Debian's package creates it), otherwise as the caller.
# Finds the binaries through pg_config or /usr/lib/postgresql/*/bin; exits
# non-zero with a reason when PostgreSQL is missing (make check installs it
# through scripts/deps.sh --all), so the tests that need it fail loudly.
set -euo pipefail

die() { echo "pgtmp: $*" >&2; exit 1; }

bindir() {
  local d
  for d in "${PG_BINDIR:-}" "$(pg_config --bindir 2>/dev/null || true)" \
           $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return; }
  done
  die "no PostgreSQL server binaries (initdb, pg_ctl) found; install them: scripts/deps.sh --all"
}

# as_pg CMD...: runs CMD as the cluster's owner.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root and there is no 'postgres' user to run the server"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

psql_() { # URL SQL
  PGOPTIONS='-c client_min_messages=warning' "$(bindir)/psql" -X -q -v ON_ERROR_STOP=1 -At -d "$1" -c "$2"
}

stop() {
  local state=$1 data
  [ -f "$state/datadir" ] || return 0
  data=$(cat "$state/datadir")
  if [ -d "$data/pgdata" ]; then
    as_pg "$(bindir)/pg_ctl" -D "$data/pgdata" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$data"
  rm -f "$state/datadir" "$state/url"
}

start() {
  local state=$1 bin data port
  mkdir -p "$state"
  stop "$state"
  bin=$(bindir)
  data=$(mktemp -d /tmp/th-pg.XXXXXX)
  echo "$data" >"$state/datadir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$data"
  chmod 700 "$data"
  as_pg "$bin/initdb" -D "$data/pgdata" -U tarheel -A trust -E UTF8 --no-locale >"$data/initdb.log" 2>&1 ||
    { cat "$data/initdb.log" >&2; die "initdb failed"; }
  for _ in $(seq 20); do
    port=$((20000 + RANDOM % 8000))
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
    if as_pg "$bin/pg_ctl" -D "$data/pgdata" -l "$data/server.log" -w -t 30 \
         -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$data -c max_connections=200 -c shared_buffers=32MB -c fsync=${PGTMP_FSYNC:-on}" \
         start >/dev/null 2>&1; then
      echo "postgres://tarheel@127.0.0.1:$port/postgres" | tee "$state/url"
      return 0
    fi
    grep -q "could not bind\|already in use" "$data/server.log" 2>/dev/null || break
  done
  cat "$data/server.log" >&2 2>/dev/null || true
  die "the PostgreSQL server did not start (log above)"
}

case "${1:-}" in
  start) [ $# -eq 2 ] || die "usage: pgtmp.sh start STATE_DIR"; start "$2" ;;
  stop) [ $# -eq 2 ] || die "usage: pgtmp.sh stop STATE_DIR"; stop "$2" ;;
  createdb)
    [ $# -eq 3 ] || die "usage: pgtmp.sh createdb URL NAME"
    psql_ "$2" "DROP DATABASE IF EXISTS \"$3\"" && psql_ "$2" "CREATE DATABASE \"$3\""
    echo "${2%/*}/$3" ;;
  dropdb)
    [ $# -eq 3 ] || die "usage: pgtmp.sh dropdb URL NAME"
    psql_ "$2" "DROP DATABASE IF EXISTS \"$3\" WITH (FORCE)" ;;
  *) die "usage: pgtmp.sh start|stop STATE_DIR, or createdb|dropdb URL NAME" ;;
esac
