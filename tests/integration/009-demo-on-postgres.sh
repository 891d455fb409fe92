#!/usr/bin/env bash
# The demo's end-to-end run (Salla and Zid orders into Qoyod, token refresh,
# webhooks, the CLI) with the database on PostgreSQL: `tarheel serve`,
# `connect`, `settings` and `orders list` all on --db postgres://... .
# Needs the pg fixture (tests/pg/pgtmp.sh): without PostgreSQL it FAILS.
set -euo pipefail
build=$1 src=$2
source "$src/tests/integration/lib.sh"
server=$(cat "$build/pgtmp/url" 2>/dev/null) || fail "no PostgreSQL: the pg fixture did not start it"
name=th_demo_$$
export TARHEEL_DEMO_DB=$(bash "$src/tests/pg/pgtmp.sh" createdb "$server" "$name")
trap 'bash "$src/tests/pg/pgtmp.sh" dropdb "$server" "$name" >/dev/null 2>&1; cleanup' EXIT
export QOYOD_PORT=$(port) SALLA_PORT=$(port) ZID_PORT=$(port) TARHEEL_PORT=$(port)
export DEMO_CALLBACK_PORT=$(port) DEMO_ORDERS=12 DEMO_ZID_ORDERS=6
export TARHEEL_DEMO_DIR=$tmp
# The secret key sealing stored tokens: a throwaway one, not the default
# $HOME/.config/tarheel/secret.key of the machine's user.
export TARHEEL_SECRET_KEY_FILE=$tmp/secret.key
(umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TARHEEL_SECRET_KEY_FILE")
"$build/tarheel" demo --exit-when-done >"$tmp/demo.out" 2>&1 || fail "the demo on PostgreSQL failed"
grep -q "demo: OK" "$tmp/demo.out" || fail "the demo did not say OK"
# the orders really are in PostgreSQL, not in a stray SQLite file
[ ! -e "$tmp/tarheel.db" ] || fail "a SQLite file was written"
n=$("$build/tarheel" orders list --db "$TARHEEL_DEMO_DB" | grep -c ' transferred ' || true)
[ "$n" -ge 10 ] || fail "only $n transferred orders in PostgreSQL"
echo "ok: the demo on PostgreSQL ($n orders transferred)"
