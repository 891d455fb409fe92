#!/usr/bin/env bash
# Three `tarheel serve` processes share one PostgreSQL database: webhooks of
# two Salla stores arrive at two of them, all three claim jobs, and the
# Qoyod emulator is slow (every call 150 ms) and faulty (a quarter of the
# invoice creations are committed and their answers dropped; 503s). While
# the third process holds jobs it is killed with SIGKILL. Its leases run
# out, the others take its jobs over, and the unknown-outcome lookup by
# reference settles what it had already sent: every order ends transferred
# with exactly one invoice (or failed with a reason), Qoyod holds no invoice
# more than the transferred orders, and the killed process's orders too.
# Needs the pg fixture (tests/pg/pgtmp.sh): without PostgreSQL it FAILS.
set -euo pipefail
build=$1 src=$2
source "$src/tests/integration/lib.sh"
server=$(cat "$build/pgtmp/url" 2>/dev/null) || fail "no PostgreSQL: the pg fixture did not start it"
name=th_cluster_$$
db=$(bash "$src/tests/pg/pgtmp.sh" createdb "$server" "$name")
trap 'cleanup; bash "$src/tests/pg/pgtmp.sh" dropdb "$server" "$name" >/dev/null 2>&1' EXIT
psql() { PGOPTIONS='-c client_min_messages=warning' "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/psql" -X -q -At -d "$db" -c "$1"; }
th=$build/tarheel
N=10 # orders per store

PA=$(port) PB=$(port) PC=$(port)
start qoyod --api-key qk1 --api-key qk2
start salla --seed 11 --webhook-url "http://127.0.0.1:$PA/webhooks/salla" --webhook-secret whsec \
  --webhook-retry-ms 500
url_salla1=$url_salla
start salla --seed 22 --webhook-url "http://127.0.0.1:$PB/webhooks/salla" --webhook-secret whsec \
  --webhook-retry-ms 500
url_salla2=$url_salla

# Two stores, each on its own Qoyod account (the emulators number their
# orders alike); each account's limits are shared by the three processes.
for i in 1 2; do
  eval "u=\$url_salla$i"
  sid=$((7000 + i))
  tok=$(curl -sf "$u/_sim/salla/install" -d "{\"store_id\":$sid}" | jq -r .access_token)
  "$th" connect salla --db "$db" --store "$sid" --access-token "$tok" --webhook-secret whsec \
    --qoyod-key "qk$i" --qoyod-url "$url_qoyod/2.0" --api-base "$u/admin/v2" \
    >"$tmp/connect$i.out" 2>&1 || fail "connect salla store $sid"
done

# Each store may run 4 jobs at once (8 slots for 9 workers): with the
# default 2 (4 slots), a and b's 6 workers could keep every slot, since a
# worker that finishes a job claims the next one at once while an idle one
# looks again only every 200 ms, and c might never hold a job to be killed with.
serve() { # NAME PORT
  "$th" serve --db "$db" --listen "127.0.0.1:$2" --workers 3 --lease 5 --per-store 4 \
    --retry-base-ms 200 --poll-interval 3 --qoyod-url "$url_qoyod/2.0" >"$tmp/$1.out" 2>&1 &
  pids+=($!)
  eval "pid_$1=$!"
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$2/healthz" >/dev/null && return; sleep 0.05; done
  fail "serve $1 did not start"
}
serve a "$PA"
serve b "$PB"
serve c "$PC"

curl -sf "$url_qoyod/_sim/faults" -d '{"faults":[
 {"match":"POST /2.0/invoices","mode":"commit_then_drop","probability":0.25},
 {"match":"* /2.0/*","mode":"error","status":503,"probability":0.05},
 {"match":"* /2.0/*","mode":"latency","latency_ms":150}]}' >/dev/null
curl -sf "$url_salla1/_sim/salla/generate" -d "{\"store_id\":7001,\"count\":$N}" >/dev/null
curl -sf "$url_salla2/_sim/salla/generate" -d "{\"store_id\":7002,\"count\":$N}" >/dev/null

# Kill c while it holds jobs (its lease owners are worker-<host>-<pid>-<n>).
held=""
for _ in $(seq 300); do
  held=$(psql "SELECT string_agg(order_id::text, ' ') FROM jobs WHERE lease_owner LIKE 'worker-%-$pid_c-%'")
  [ -n "$held" ] && break
  sleep 0.05
done
[ -n "$held" ] || fail "process c never held a job"
kill -KILL "$pid_c"
echo "killed process c (pid $pid_c) after ${SECONDS}s, holding the jobs of orders: $held"

left=1
for _ in $(seq 300); do
  left=$(psql "SELECT (SELECT count(*) FROM jobs) + (SELECT count(*) FROM orders WHERE xfer < 2)
               + GREATEST(0, $((2 * N)) - (SELECT count(*) FROM orders))")
  [ "$left" = 0 ] && break
  sleep 0.3
done
echo "settled after ${SECONDS}s"
curl -sf -X DELETE "$url_qoyod/_sim/faults" >/dev/null
"$th" orders list --db "$db" >"$tmp/orders.txt"
[ "$left" = 0 ] || { cat "$tmp/orders.txt"; fail "orders still waiting after the kill"; }

# Every transferred order is exactly one invoice in its store's Qoyod
# account (conn 1: qk1, conn 2: qk2); failed ones have a reason; Qoyod holds
# no other invoice.
transferred=0
while IFS='|' read -r conn id num xfer reason; do
  key=qk$conn
  case "$xfer" in
    2)
      transferred=$((transferred + 1))
      got=$(curl -sf -H "API-KEY: $key" -G "$url_qoyod/2.0/invoices" \
        --data-urlencode "q[reference_eq]=$num" | grep -o '"reference":"[^"]*"' | wc -l)
      [ "$got" = 1 ] || fail "order $id of connection $conn has $got invoices" ;;
    3) [ -n "$reason" ] || fail "order $id failed without a reason" ;;
    *) cat "$tmp/orders.txt"; fail "order $id of connection $conn ended in state $xfer" ;;
  esac
done < <(psql "SELECT conn_id, order_id, number, xfer, reason FROM orders ORDER BY conn_id, order_id")
all=0
for key in qk1 qk2; do
  n=$(curl -sf -H "API-KEY: $key" "$url_qoyod/2.0/invoices?per_page=1000" | grep -o '"reference":"[^"]*"' | wc -l)
  all=$((all + n))
done
[ "$all" = "$transferred" ] || { cat "$tmp/orders.txt"; fail "Qoyod holds $all invoices for $transferred transferred orders"; }
[ "$transferred" -ge $((2 * N - 6)) ] || fail "only $transferred of $((2 * N)) orders transferred"
# the orders the killed process held were taken over and settled
for o in $held; do
  st=$(psql "SELECT string_agg(xfer::text, ',') FROM orders WHERE order_id = $o")
  case "$st" in *[01]*|"") fail "order $o of the killed process ended '$st'" ;; esac
done
# all three worked: the survivors took jobs, and each store was polled by one owner at a time
for p in a b; do grep -q "listening on" "$tmp/$p.out" || fail "serve $p log"; done
[ "$(psql "SELECT count(*) FROM leases WHERE name LIKE 'poll:%'")" = 2 ] || fail "poll leases missing"
echo "ok: 3 processes, one killed with SIGKILL holding orders [$held]: $all invoices for $transferred transferred orders, none twice"
