#!/usr/bin/env bash
# The fault matrix: many orders through the emulators with every fault mode
# on at once, on every side (tests/integration/005 is its short form):
#   Salla webhooks duplicated, reordered, badly signed, slow and lost; Salla
#   order reads failing with 500 and 429; Zid webhooks duplicated,
#   reordered and lost, Zid order reads failing with 503; Qoyod answers lost
#   after the write (commit-then-drop) for invoices, payments, products and
#   customers, 503s, connection resets, 429 bursts with Retry-After, latency;
#   both stores' access tokens expired early every few seconds (tarheel must
#   refresh them); one Salla token refresh whose answer is lost, so that
#   tarheel's retry presents a refresh token Salla already used: Salla
#   revokes the whole grant and the connection needs the app reinstalled,
#   which the matrix does as a merchant would once tarheel says so.
# The stores keep stock (the matrix counts DEMO_STOCK units of every product
# first) and sell nothing they do not have.
#
# Then it checks, from the emulators' own records (not tarheel's word):
#   lost          orders placed in a store that are neither exactly an
#                 invoice nor an expected failure (an item without SKU)
#                 that tarheel reports failed with its reason
#   duplicated    orders with more than one invoice
#   mis-totalled  invoices whose total (halalas) differs from the order's
#   payments      invoices without exactly one payment of their total
#                 ("financial invoice" is on for both stores)
#   credit notes  orders cancelled, refunded or returned in the store
#                 without exactly one credit note, or with one they should
#                 not have
#   transferring  orders tarheel still has transferring or not transferred
# prints one verdict line with the counts and exits 1 when any is not zero.
#
#   scripts/fault-matrix.sh BUILD_DIR [SALLA_ORDERS [ZID_ORDERS]]   (default 2000, 500)
#
# Environment: MATRIX_DIR (state; kept on failure, else removed unless it
# was given), MATRIX_POLL (catch-up poll interval, s; default 20),
# MATRIX_EXPIRE_S (token expiry period, s; default 15), MATRIX_STOCK (units
# of each product; default twice the orders, so nothing sells out),
# MATRIX_TIMEOUT (s; default 120 + 1 per order), MATRIX_REFRESH_REUSE (0:
# no lost refresh answer, so no reinstall; default 1), MATRIX_BURSTS (Qoyod
# 429s; Salla gets half as many, Zid a quarter; default 20).
set -euo pipefail
build=${1:?usage: fault-matrix.sh BUILD_DIR [SALLA_ORDERS [ZID_ORDERS]]}
build=$(cd "$build" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
th=$build/tarheel
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((12000 + RANDOM % 16000))
    (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  echo "fault matrix: no free port" >&2
  exit 1
}
export QOYOD_PORT=$(free_port) SALLA_PORT=$(free_port) ZID_PORT=$(free_port)
export TARHEEL_PORT=$(free_port) DEMO_CALLBACK_PORT=$(free_port)
export DEMO_ORDERS=${2:-2000} DEMO_ZID_ORDERS=${3:-500}
asked=$((DEMO_ORDERS + DEMO_ZID_ORDERS))
export DEMO_WAIT_ROUNDS=$((asked * 5 + 600))
export DEMO_STOCK=${MATRIX_STOCK:-$((asked * 2))} DEMO_SKIP_CHECKS=1
poll=${MATRIX_POLL:-20}
expire_every=${MATRIX_EXPIRE_S:-15}
timeout=${MATRIX_TIMEOUT:-$((120 + asked))}
keep_dir=0
[ -n "${MATRIX_DIR:-}" ] && keep_dir=1
dir=${MATRIX_DIR:-$(mktemp -d /tmp/tarheel-matrix.XXXXXX)}
mkdir -p "$dir"
export TARHEEL_DEMO_DIR=$dir
db=$dir/tarheel.db
SP=$SALLA_PORT ZP=$ZID_PORT QP=$QOYOD_PORT
STORE=1305146709 ZSTORE=251073
# The third Salla token refresh loses its answer: the retry reuses the
# refresh token (MATRIX_REFRESH_REUSE=0 leaves it out).
reuse=',
 {"match":"POST /oauth2/token","mode":"commit_then_drop","count":1,"skip":2}'
[ "${MATRIX_REFRESH_REUSE:-1}" = 1 ] || reuse=""
# 429 answers with Retry-After 1 s: Qoyod's pause every store of the account.
bursts=${MATRIX_BURSTS:-20}
# Faults are the point: retry soon; the emulator has no call budget, so
# tarheel's own (240/min, for the real Qoyod) is lifted.
export TARHEEL_SERVE_ARGS="--retry-base-ms 200 --qoyod-rpm 100000 --poll-interval $poll"
export DEMO_SALLA_FAULTS='{"faults":[
 {"match":"webhook order.*","mode":"duplicate","probability":0.3},
 {"match":"webhook order.*","mode":"out_of_order","probability":0.2},
 {"match":"webhook order.*","mode":"bad_signature","count":20},
 {"match":"webhook order.*","mode":"slow_receiver","count":10,"latency_ms":1},
 {"match":"webhook order.*","mode":"lose","probability":0.05},
 {"match":"GET /admin/v2/orders/*","mode":"error","status":500,"probability":0.1},
 {"match":"GET /admin/v2/orders/*","mode":"rate_limit","retry_after":1,"count":'"$((bursts / 2))"'}'"$reuse"']}'
export DEMO_ZID_FAULTS='{"faults":[
 {"match":"webhook order.*","mode":"duplicate","probability":0.3},
 {"match":"webhook order.*","mode":"out_of_order","probability":0.2},
 {"match":"webhook order.*","mode":"lose","probability":0.05},
 {"match":"GET /v1/managers/store/orders/*","mode":"error","status":503,"probability":0.1},
 {"match":"GET /v1/managers/store/orders/*","mode":"rate_limit","retry_after":1,"count":'"$((bursts / 4))"'}]}'
export DEMO_QOYOD_FAULTS='{"faults":[
 {"match":"POST /2.0/invoices","mode":"commit_then_drop","probability":0.2},
 {"match":"POST /2.0/invoice_payments","mode":"commit_then_drop","probability":0.2},
 {"match":"POST /2.0/products","mode":"commit_then_drop","probability":0.2},
 {"match":"POST /2.0/customers","mode":"commit_then_drop","probability":0.1},
 {"match":"POST /2.0/credit_notes","mode":"commit_then_drop","probability":0.2},
 {"match":"POST /2.0/inventory_adjustments","mode":"commit_then_drop","probability":0.2},
 {"match":"* /2.0/*","mode":"error","status":503,"probability":0.05},
 {"match":"POST /2.0/*","mode":"reset","probability":0.03},
 {"match":"POST /2.0/invoices","mode":"rate_limit","retry_after":1,"count":'"$bursts"'},
 {"match":"* /2.0/*","mode":"latency","latency_ms":20,"probability":0.1}]}'

demo_pid="" storm_pid=""
finish() {
  [ -n "$storm_pid" ] && kill "$storm_pid" 2>/dev/null || true
  if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
    kill -TERM "$demo_pid" 2>/dev/null || true # its trap stops the emulators and tarheel
    wait "$demo_pid" 2>/dev/null || true
  fi
}
trap finish EXIT

start=$(date +%s)
# The demo sets the world up (emulators, tarheel, both stores connected,
# orders placed, statuses moved, a cancellation, a refund and a return)
# and stays up; its own verdict is not used here.
bash "$root/scripts/demo.sh" "$build" >"$dir/matrix.out" 2>&1 &
demo_pid=$!

# The token storm, while orders move: every expire_every s both stores'
# access tokens expire; a Salla connection that needs reinstalling (the
# refresh whose answer was lost) is reinstalled, as its merchant would.
storm() {
  local n=0 next=$(($(date +%s) + expire_every))
  while :; do
    if [ "$(date +%s)" -ge "$next" ]; then
      curl -sf "http://127.0.0.1:$SP/_sim/salla/tokens/expire" -d "{\"store_id\":$STORE}" >/dev/null 2>&1 &&
        echo expired-salla >>"$dir/storm.log" || true
      curl -sf "http://127.0.0.1:$ZP/_sim/zid/tokens/expire" -d "{\"store_id\":$ZSTORE}" >/dev/null 2>&1 &&
        echo expired-zid >>"$dir/storm.log" || true
      next=$(($(date +%s) + expire_every))
    fi
    if "$th" settings --db "$db" --store "$STORE" 2>/dev/null | grep -q needs_reinstall; then
      curl -sf "http://127.0.0.1:$SP/_sim/salla/install" -d "{\"store_id\":$STORE}" >/dev/null 2>&1 &&
        echo reinstalled-salla >>"$dir/storm.log" || true
      sleep 2
    fi
    sleep 1
  done
}
# (from the first order on: the demo's setup runs without it)
for _ in $(seq 600); do grep -q "^demo: placing" "$dir/matrix.out" 2>/dev/null && break; sleep 0.2; done
storm &
storm_pid=$!

# The demo's transfer wait ends with its orders list and Qoyod summary.
verdict_ok=1
for _ in $(seq "$timeout"); do
  grep -q "^Qoyod: " "$dir/matrix.out" 2>/dev/null && break
  kill -0 "$demo_pid" 2>/dev/null || break
  sleep 1
done
kill "$storm_pid" 2>/dev/null || true
wait "$storm_pid" 2>/dev/null || true
storm_pid=""
if ! grep -q "^Qoyod: " "$dir/matrix.out"; then
  kill -0 "$demo_pid" 2>/dev/null &&
    echo "fault matrix: the run did not finish in ${timeout}s (see $dir/matrix.out)"
  verdict_ok=0
fi
# Its credit notes and reconcile next; then it stays up for inspection.
for _ in $(seq 600); do
  grep -q "tarheel demo is running" "$dir/matrix.out" 2>/dev/null && break
  kill -0 "$demo_pid" 2>/dev/null || break
  sleep 0.5
done
took=$(($(date +%s) - start))
if ! kill -0 "$demo_pid" 2>/dev/null; then
  wait "$demo_pid" && drc=0 || drc=$?
  demo_pid=""
  echo "fault matrix: the demo stopped early (exit $drc); see $dir/matrix.out"
  tail -5 "$dir/matrix.out"
  exit 1
fi

# ---- The checks, from the emulators' records ----------------------------
qget() { # path key: every page of a Qoyod list, as one JSON array of its `key`
  local page=1 n
  rm -f "$dir"/page.*.json
  while :; do
    # Qoyod's own budget (300 calls a minute a key) is shared with
    # tarheel: a 429 or 5xx waits and asks again; a page never read fails.
    local code=0 tries=0
    while :; do
      code=$(curl -s -o "$dir/page.raw" -w '%{http_code}' -H 'API-KEY: demo-key' \
        "http://127.0.0.1:$QP/2.0/$1?per_page=100&page=$page" || true)
      [ "$code" = 200 ] || [ "$code" = 404 ] && break
      tries=$((tries + 1))
      [ "$tries" -lt 60 ] || { echo "fault matrix: cannot read Qoyod's $1 (HTTP $code)" >&2; exit 1; }
      sleep 2
    done
    jq -c --arg k "$2" 'if type == "object" then .[$k] else [] end' "$dir/page.raw" >"$dir/page.$page.json"
    n=$(jq length "$dir/page.$page.json")
    [ "$n" -lt 100 ] && break
    page=$((page + 1))
  done
  jq -cs 'add' $(ls "$dir"/page.*.json | sort -t. -k2 -n)
  rm -f "$dir"/page.*.json "$dir/page.raw"
}
# An invoice's reference is the order's number, after the connection's
# reference prefix when it has one (a second store gets one: "Z2-").
prefix() { # store [platform]
  "$th" settings --db "$db" --store "$1" ${2:+--platform $2} 2>/dev/null |
    awk '$1 == "reference-prefix" && $2 !~ /^\(/ {print $2 "-"}'
}
sp=$(prefix "$STORE") zp=$(prefix "$ZSTORE" zid)
curl -sf "http://127.0.0.1:$SP/_sim/salla/orders" |
  jq -c --arg p "$sp" '[.orders[] | {ref: ($p + (.reference_id | tostring)), total: (.amounts.total.amount * 100 | round),
          nosku: ([.items[] | select((.sku // "") == "")] | length > 0),
          credit: (.status.slug == "canceled" or .status.slug == "restored")}]' >"$dir/store-salla.json"
curl -sf "http://127.0.0.1:$ZP/_sim/zid/orders" |
  jq -c --arg p "$zp" '[.orders[] | {ref: ($p + (.id | tostring)), total: (.order_total | tonumber * 100 | round),
          nosku: ([.products[] | select((.sku // "") == "")] | length > 0),
          credit: (.order_status.code == "reversed" or .order_status.code == "partially_reversed")}]' \
  >"$dir/store-zid.json"
qget invoices invoices >"$dir/invoices.json"
qget invoice_payments receipts >"$dir/payments.json"
qget credit_notes credit_notes >"$dir/credit-notes.json"
"$th" orders list --json --db "$db" >"$dir/tarheel-orders.json"

zc=$("$th" settings --db "$db" --store "$ZSTORE" --platform zid 2>/dev/null |
  sed -n 's/.*connection \([0-9]*\).*/\1/p' | sed -n 1p)
jq -n --arg sp "$sp" --arg zp "$zp" --argjson zc "${zc:-0}" --slurpfile s "$dir/store-salla.json" --slurpfile z "$dir/store-zid.json" \
  --slurpfile inv "$dir/invoices.json" --slurpfile pay "$dir/payments.json" \
  --slurpfile cn "$dir/credit-notes.json" --slurpfile th "$dir/tarheel-orders.json" '
  ($s[0] + $z[0]) as $orders
  | ($inv[0] | group_by(.reference) | map({key: .[0].reference, value: .}) | from_entries) as $ibr
  | ($pay[0] | map(.allocations[]? | select(.allocatee_type == "Invoice"))
     | group_by(.allocatee_id) | map({key: (.[0].allocatee_id | tostring), value: .}) | from_entries) as $pbi
  | ($cn[0] | group_by(.parent_id) | map({key: (.[0].parent_id | tostring), value: length}) | from_entries) as $cbi
  | ($th[0].orders | map({key: ((if .connection == $zc then $zp else $sp end) + .number), value: .})
     | from_entries) as $t
  | [ $orders[] | . as $o | ($ibr[$o.ref] // []) as $is | ($t[$o.ref]) as $tt
      | { ref, nosku, credit, invoices: ($is | length), total,
          itotal: (if ($is | length) > 0 then ($is[0].total | tonumber * 100 | round) else null end),
          payments: (if ($is | length) > 0 then ($pbi[$is[0].id | tostring] // [] | length) else 0 end),
          paid: (if ($is | length) > 0 then ($pbi[$is[0].id | tostring] // [] | map(.amount | tonumber * 100 | round) | add) else null end),
          credits: (if ($is | length) > 0 then ($cbi[$is[0].id | tostring] // 0) else 0 end),
          state: ($tt.state // "unknown"),
          why: ($tt.reason.message // "") } ] as $r
  | { placed: ($orders | length), salla: ($s[0] | length), zid: ($z[0] | length),
      invoiced: ([$r[] | select(.invoices > 0)] | length),
      expected_failures: ([$r[] | select(.nosku and .invoices == 0 and .state == "failed" and (.why | test("no SKU")))] | length),
      lost: ([$r[] | select(.invoices == 0 and ((.nosku and .state == "failed" and (.why | test("no SKU"))) | not))] | length),
      invoiced_without_sku: ([$r[] | select(.nosku and .invoices > 0)] | length),
      duplicated: ([$r[] | select(.invoices > 1)] | length),
      mistotalled: ([$r[] | select(.invoices > 0 and .itotal != .total)] | length),
      payments_wrong: ([$r[] | select(.invoices > 0 and (.payments != 1 or .paid != .itotal))] | length),
      credit_notes_wrong: ([$r[] | select(.invoices > 0 and (if .credit then .credits != 1 else .credits != 0 end))] | length),
      credit_notes: ($cn[0] | length),
      transferring: ([$th[0].orders[] | select(.state != "transferred" and .state != "failed")] | length),
      bad: [$r[] | select((.invoices == 0 and ((.nosku and .state == "failed") | not)) or .invoices > 1
              or (.invoices > 0 and (.itotal != .total or .payments != 1 or .paid != .itotal
                  or (if .credit then .credits != 1 else .credits != 0 end))))] | .[0:20] }' \
  >"$dir/verdict.json"

v() { jq -r ".$1" "$dir/verdict.json"; }
touch "$dir/storm.log"
expired=$(grep -c '^expired' "$dir/storm.log" || true)
reinstalls=$(grep -c '^reinstalled' "$dir/storm.log" || true)
refreshes=$(grep -c 'event=token_refreshed' "$dir/tarheel.log" 2>/dev/null || true)
fails=$(($(v lost) + $(v invoiced_without_sku) + $(v duplicated) + $(v mistotalled) + $(v payments_wrong) +
  $(v credit_notes_wrong) + $(v transferring)))
[ "$verdict_ok" = 1 ] || fails=$((fails + 1))
if [ "$fails" != 0 ]; then
  echo "fault matrix: orders at fault (first 20):"
  jq -c '.bad[]' "$dir/verdict.json"
fi
echo "fault matrix: $(v placed) placed (Salla $(v salla), Zid $(v zid)), $(v invoiced) invoiced," \
  "$(v expected_failures) expected failures (no SKU); lost $(v lost), duplicated $(v duplicated)," \
  "mis-totalled $(v mistotalled), payments wrong $(v payments_wrong), credit notes wrong" \
  "$(v credit_notes_wrong) (of $(v credit_notes)), invoiced without SKU $(v invoiced_without_sku)," \
  "left transferring $(v transferring); token expiries $expired, refreshes $refreshes," \
  "reinstalls $reinstalls; ${took}s"
finish
trap - EXIT
if [ "$fails" = 0 ]; then
  [ "$keep_dir" = 1 ] || rm -rf "$dir"
  exit 0
fi
echo "fault matrix: FAILED (state kept in $dir)"
exit 1
