#!/usr/bin/env bash
# make demo: starts the Qoyod, Salla and Zid emulators and tarheel (SQLite, or
# PostgreSQL when TARHEEL_DEMO_DB=postgres://... names an empty database),
# installs the app in a Salla store (Easy Mode), places realistic orders,
# moves some through statuses so webhooks fire, waits for tarheel to move
# them into Qoyod, and prints each order with its state, invoice and totals.
#
#   scripts/demo.sh [BUILD_DIR] [--exit-when-done]
#
# With --exit-when-done it stops everything and exits 0 only if every order
# that can be transferred became exactly one invoice with an equal total, and
# every other one failed with a reason.
set -euo pipefail
build=build
exit_when_done=0
for a in "$@"; do
  case "$a" in
    --exit-when-done) exit_when_done=1 ;;
    *) build=$a ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sim=$build/tarheel-sim
th=$build/tarheel
dir=${TARHEEL_DEMO_DIR:-$(mktemp -d /tmp/tarheel-demo.XXXXXX)}
# The database: a SQLite file in $dir, or TARHEEL_DEMO_DB (postgres://...).
db=${TARHEEL_DEMO_DB:-$dir/tarheel.db}
QP=${QOYOD_PORT:-9100} SP=${SALLA_PORT:-9200} ZP=${ZID_PORT:-9300} TP=${TARHEEL_PORT:-8080}
STORE=1305146709
N=${DEMO_ORDERS:-24}
ZSTORE=251073
NZ=${DEMO_ZID_ORDERS:-12}
CBP=${DEMO_CALLBACK_PORT:-$((TP + 7))}

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

wait_http() { # url name log
  for _ in $(seq 100); do
    curl -sf "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "demo: $2 did not start; see $3" >&2
  exit 1
}

"$sim" qoyod --listen "127.0.0.1:$QP" --seed 7 --api-key demo-key >"$dir/qoyod.log" 2>&1 &
pids+=($!)
"$sim" salla --listen "127.0.0.1:$SP" --seed 7 --webhook-url "http://127.0.0.1:$TP/webhooks/salla" \
  --webhook-secret demo-webhook-secret --webhook-retry-ms 2000 >"$dir/salla.log" 2>&1 &
pids+=($!)
"$sim" zid --listen "127.0.0.1:$ZP" --seed 7 --webhook-retry-ms 2000 \
  --app-webhook-url "http://127.0.0.1:$TP/webhooks/zid/demo-zid-app-token" >"$dir/zid.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$QP/_sim/health" "the Qoyod emulator" "$dir/qoyod.log"
wait_http "http://127.0.0.1:$SP/_sim/health" "the Salla emulator" "$dir/salla.log"
wait_http "http://127.0.0.1:$ZP/_sim/health" "the Zid emulator" "$dir/zid.log"

echo "demo: checking the Qoyod API key and its inventory locations"
"$th" connect qoyod --api-key demo-key --qoyod-url "http://127.0.0.1:$QP/2.0"

# The dashboard's login (a real install: `tarheel user add NAME`, asked twice).
DEMO_USER=${DEMO_USER:-admin}
DEMO_PASSWORD=${DEMO_PASSWORD:-tarheel-demo-2026}
echo "$DEMO_PASSWORD" | "$th" user add "$DEMO_USER" --db "$db" >/dev/null

# The REST API answers with this token (a real install keeps its own in a file).
export TARHEEL_API_TOKEN=${TARHEEL_API_TOKEN:-demo-api-token-0123456789}
"$th" serve --db "$db" --listen "127.0.0.1:$TP" \
  --salla-webhook-secret demo-webhook-secret --salla-api "http://127.0.0.1:$SP/admin/v2" \
  --salla-client-id demo-client --salla-client-secret demo-secret \
  --salla-token-url "http://127.0.0.1:$SP/oauth2/token" \
  --zid-app-token demo-zid-app-token --zid-api "http://127.0.0.1:$ZP/v1" \
  --zid-client-id demo-client --zid-client-secret demo-secret \
  --zid-token-url "http://127.0.0.1:$ZP/oauth/token" \
  --qoyod-url "http://127.0.0.1:$QP/2.0" --qoyod-key demo-key --inventory 1 \
  ${TARHEEL_SERVE_ARGS:-} >"$dir/tarheel.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$TP/healthz" "tarheel" "$dir/tarheel.log"

echo "demo: installing the app in Salla store $STORE (Easy Mode: tokens arrive by webhook)"
curl -sf "http://127.0.0.1:$SP/_sim/salla/install" -d "{\"store_id\":$STORE}" >/dev/null
for _ in $(seq 50); do
  "$th" settings --db "$db" --store "$STORE" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "demo: connecting Zid store $ZSTORE (OAuth: the merchant opens a link; webhooks registered)"
curl -sf "http://127.0.0.1:$ZP/_sim/zid/stores" -d "{\"id\":$ZSTORE}" >/dev/null
if [ -n "${DEMO_STOCK:-}" ]; then
  curl -sf "http://127.0.0.1:$ZP/_sim/zid/stock" -d "{\"store_id\":$ZSTORE,\"quantity\":$DEMO_STOCK}" >/dev/null
fi
"$th" connect zid --oauth --client-id demo-client --client-secret demo-secret \
  --zid-oauth-url "http://127.0.0.1:$ZP" --api-base "http://127.0.0.1:$ZP/v1" \
  --redirect-uri "http://127.0.0.1:$CBP/callback" --public-url "http://127.0.0.1:$TP" --timeout 30 \
  --db "$db" --qoyod-key demo-key --qoyod-url "http://127.0.0.1:$QP/2.0" \
  >"$dir/connect-zid.log" 2>&1 &
cpid=$!
for _ in $(seq 100); do grep -q "oauth/authorize" "$dir/connect-zid.log" && break; sleep 0.1; done
link=$(grep -o "http[^ ]*oauth/authorize?[^ ]*" "$dir/connect-zid.log" || true)
# (a browser would open the link; the emulator approves at once and redirects back)
[ -n "$link" ] && curl -sfL "$link" -o /dev/null || true
wait "$cpid" || { echo "demo: connecting Zid failed:"; cat "$dir/connect-zid.log"; exit 1; }
# Faults for rehearsals (scripts/fault-matrix.sh): JSON for each emulator's
# POST /_sim/faults, applied once both stores are connected.
if [ -n "${DEMO_SALLA_FAULTS:-}" ]; then
  curl -sf "http://127.0.0.1:$SP/_sim/faults" -d "$DEMO_SALLA_FAULTS" >/dev/null
  echo "demo: Salla faults on: $DEMO_SALLA_FAULTS" | cut -c1-200
fi
if [ -n "${DEMO_QOYOD_FAULTS:-}" ]; then
  curl -sf "http://127.0.0.1:$QP/_sim/faults" -d "$DEMO_QOYOD_FAULTS" >/dev/null
  echo "demo: Qoyod faults on: $DEMO_QOYOD_FAULTS" | cut -c1-200
fi
# DEMO_STOCK: a stock count in the stores before any order (each product
# they count gets that many units); else the emulators' sample stock.
if [ -n "${DEMO_STOCK:-}" ]; then
  curl -sf "http://127.0.0.1:$SP/_sim/salla/stock" -d "{\"store_id\":$STORE,\"quantity\":$DEMO_STOCK}" >/dev/null
fi
echo "demo: placing $N orders (VAT, coupons, shipping, cash on delivery, one product without SKU)"
# (at most 1000 an emulator call; a product sold out is not sold, so the
# store may take fewer orders than asked)
ids=""
for ((left = N; left > 0; left -= 500)); do
  ids+=" $(curl -sf "http://127.0.0.1:$SP/_sim/salla/generate" \
    -d "{\"store_id\":$STORE,\"count\":$((left < 500 ? left : 500))}" | jq -r '.orders[]' | tr '\n' ' ')"
done
N=$(wc -w <<<"$ids")
first_id=$(awk '{print $1}' <<<"$ids")
# Move a few orders along, and cancel one, so status webhooks fire too.
i=0
for id in $ids; do
  i=$((i + 1))
  case $((i % 6)) in
    1) slug=in_progress ;; 2) slug=shipped ;; 3) slug=completed ;; *) continue ;;
  esac
  curl -sf "http://127.0.0.1:$SP/_sim/salla/orders/$id/status" -d "{\"slug\":\"$slug\"}" >/dev/null
done

if [ -n "${DEMO_ZID_FAULTS:-}" ]; then
  curl -sf "http://127.0.0.1:$ZP/_sim/faults" -d "$DEMO_ZID_FAULTS" >/dev/null
  echo "demo: Zid faults on: $DEMO_ZID_FAULTS" | cut -c1-200
fi
echo "demo: placing $NZ orders in Zid"
zids=$(curl -sf "http://127.0.0.1:$ZP/_sim/zid/generate" -d "{\"store_id\":$ZSTORE,\"count\":$NZ}" |
  jq -r '.orders[]' | tr '\n' ' ')
NZ=$(wc -w <<<"$zids")
i=0
for id in $zids; do
  i=$((i + 1))
  case $((i % 4)) in
    1) st=preparing ;; 2) st=delivered ;; *) continue ;;
  esac
  curl -sf "http://127.0.0.1:$ZP/_sim/zid/orders/$id/status" -d "{\"status\":\"$st\"}" >/dev/null
done
N=$((N + NZ))

echo "demo: waiting for tarheel to transfer them"
for _ in $(seq "${DEMO_WAIT_ROUNDS:-150}"); do
  left=$("$th" orders list --db "$db" | grep -cE ' (not transferred|transferring) ' || true)
  n=$("$th" orders list --db "$db" | tail -1 | tr -dc '0-9')
  [ "${n:-0}" -ge "$N" ] && [ "$left" = 0 ] && break
  sleep 0.2
done
# The checks below read the emulators: no faults for them.
curl -sf -X DELETE "http://127.0.0.1:$SP/_sim/faults" >/dev/null || true
curl -sf -X DELETE "http://127.0.0.1:$QP/_sim/faults" >/dev/null || true
curl -sf -X DELETE "http://127.0.0.1:$ZP/_sim/faults" >/dev/null || true

# After transfer: a cancellation and a refund in Salla, a partial return in
# Zid; each becomes a Qoyod credit note against its invoice (docs/MONEY.md).
transferred() { "$th" orders show "$1" --db "$db" 2>/dev/null | grep -q '^  transfer  *transferred'; }
cancelled="" refunded="" returned=""
for id in $ids; do
  transferred "$id" || continue
  if [ -z "$cancelled" ]; then cancelled=$id
  elif [ -z "$refunded" ]; then refunded=$id; break; fi
done
for id in $zids; do
  transferred "$id" || continue
  # an order of two units or more, so one unit back is a part
  opid=$(curl -sf "http://127.0.0.1:$ZP/_sim/zid/orders" | jq -r --argjson id "$id" \
    '.orders[] | select(.id == $id) | select((.products | length) > 1 or .products[0].quantity > 1)
     | .products[0].order_product_id' 2>/dev/null || true)
  [ -n "$opid" ] && { returned=$id; break; }
done
credits=0
if [ -n "$cancelled" ]; then
  echo "demo: order $cancelled is cancelled in Salla after its transfer"
  curl -sf "http://127.0.0.1:$SP/_sim/salla/orders/$cancelled/status" -d '{"slug":"canceled"}' >/dev/null
  credits=$((credits + 1))
fi
if [ -n "$refunded" ]; then
  echo "demo: order $refunded is refunded (restored) in Salla"
  curl -sf "http://127.0.0.1:$SP/_sim/salla/orders/$refunded/status" -d '{"slug":"restored"}' >/dev/null
  credits=$((credits + 1))
fi
if [ -n "$returned" ]; then
  echo "demo: one unit of Zid order $returned comes back (a partial return)"
  curl -sf "http://127.0.0.1:$ZP/_sim/zid/orders/$returned/reverse" \
    -d "{\"items\":[{\"order_product_id\":$opid,\"quantity\":1}],\"reason\":\"منتج تالف\"}" >/dev/null
  credits=$((credits + 1))
fi
for _ in $(seq "${DEMO_WAIT_ROUNDS:-150}"); do
  done_=0
  for id in $cancelled $refunded $returned; do
    "$th" orders show "$id" --db "$db" 2>/dev/null | grep -q 'credit notes *credited' && done_=$((done_ + 1))
  done
  [ "$done_" -ge "$credits" ] && break
  sleep 0.2
done
echo
"$th" orders list --db "$db"
echo
summary=$(curl -sf "http://127.0.0.1:$QP/_sim/qoyod/summary?api_key=demo-key")
echo "Qoyod: $summary" | cut -c1-240

# DEMO_SKIP_CHECKS=1 (the fault matrix, which checks for itself): stay up
# now. Its per-order reads below would share Qoyod's 300 calls a minute.
if [ "${DEMO_SKIP_CHECKS:-0}" = 1 ]; then
  echo
  echo "tarheel demo is running (state and logs in $dir; checks skipped)"
  wait
fi

# qread CURL-ARGS...: a read of the Qoyod emulator for the checks below. Its
# budget (300 calls a minute a key) is shared with tarheel, whose opening
# balances and their corrections read Qoyod too: a 429 or 5xx waits and
# asks again; a read that never succeeds says so and fails.
qread() {
  local code tries=0
  while :; do
    code=$(curl -s -o "$dir/qread.json" -w '%{http_code}' -H 'API-KEY: demo-key' "$@" || true)
    [ "$code" = 200 ] || [ "$code" = 404 ] && { cat "$dir/qread.json"; return 0; }
    tries=$((tries + 1))
    [ "$tries" -lt 60 ] || { echo "demo: cannot read Qoyod ($*): HTTP $code" >&2; return 1; }
    sleep 2
  done
}

# Verify: each transferred order has exactly one invoice with its reference
# (the order number; the Zid store shares the Qoyod account, so its
# references carry its prefix, docs/SETTINGS.md) and an equal total; every
# failed one has a reason.
bad=0
while read -r id num status state ref rest; do
  case "$state" in
    transferred)
      if body=$(qread -G "http://127.0.0.1:$QP/2.0/invoices" --data-urlencode "q[reference_eq]=$ref"); then
        got=$({ grep -o '"reference":"[^"]*"' <<<"$body" || true; } | wc -l)
      else
        got="unknown (Qoyod could not be read)"
      fi
      [ "$got" = 1 ] || { echo "demo: order $id has $got invoices"; bad=1; } ;;
    failed) ;;
    *) echo "demo: order $id is still '$state'"; bad=1 ;;
  esac
done < <("$th" orders list --db "$db" | sed -n '2,$p' | grep -v '^(' |
  sed -E 's/not transferred/not_transferred/' | awk '{print $1, $2, $3, $4, $5}')
if "$th" orders list --db "$db" | awk '$4=="transferred" && $6!=$7 {exit 1}'; then :; else
  echo "demo: a transferred order's total differs from its invoice"; bad=1
fi

for id in $cancelled $refunded $returned; do
  echo
  "$th" orders show "$id" --db "$db" | sed -n '1,8p;/  credit note [a-z]/p'
  "$th" orders show "$id" --db "$db" | grep -q 'credit notes *credited' ||
    { echo "demo: order $id has no credit note"; bad=1; }
done
cn=$(qread "http://127.0.0.1:$QP/2.0/credit_notes?per_page=100" | jq '.credit_notes | length') ||
  cn="unknown (Qoyod could not be read)"
[ "$cn" = "$credits" ] || { echo "demo: $cn credit notes in Qoyod, expected $credits"; bad=1; }

today=$(date -u -d '+3 hours' +%F)
echo
echo "demo: reconciling today's orders with Qoyod (read-only)"
"$th" reconcile --db "$db" --store "$STORE" --from "$today" --to "$today" || bad=1
echo
"$th" reconcile --db "$db" --store "$ZSTORE" --platform zid --from "$today" --to "$today" || bad=1

if [ "$exit_when_done" = 1 ]; then
  [ $bad = 0 ] && echo "demo: OK — every transferable order is exactly one invoice with an equal total, every cancellation and return one credit note, and reconcile finds no difference"
  exit $bad
fi
cat <<EOT

tarheel demo is running (state and logs in $dir):

  Dashboard  http://127.0.0.1:$TP/   log in as $DEMO_USER, password $DEMO_PASSWORD
             (Arabic first; English is one click away, top corner)

  tarheel  http://127.0.0.1:$TP   webhooks: /webhooks/salla, /webhooks/zid/…; health: /healthz
           REST API /api/v1 (Authorization: Bearer $TARHEEL_API_TOKEN)
  Qoyod    http://127.0.0.1:$QP   (API key: demo-key)
  Salla    http://127.0.0.1:$SP   store $STORE
  Zid      http://127.0.0.1:$ZP   store $ZSTORE

Try:
  $th orders list --db $db
  $th orders show $first_id --db $db
  curl -s -H 'API-KEY: demo-key' http://127.0.0.1:$QP/2.0/invoices | head -c 600
  $th report --store $STORE --db $db
  $th orders show ${cancelled:-$first_id} --db $db        # a cancellation and its credit note
  $th reconcile --store $STORE --from $today --to $today --db $db
  curl -s -H 'Authorization: Bearer $TARHEEL_API_TOKEN' 'http://127.0.0.1:$TP/api/v1/reconcile?connection=salla:$STORE&from=$today&to=$today'
  curl -s -H 'API-KEY: demo-key' http://127.0.0.1:$QP/2.0/credit_notes | head -c 600
  curl -s -H 'Authorization: Bearer $TARHEEL_API_TOKEN' 'http://127.0.0.1:$TP/api/v1/orders?limit=3'
  curl -s http://127.0.0.1:$SP/_sim/salla/generate -d '{"store_id":$STORE,"count":3}'
  curl -s http://127.0.0.1:$ZP/_sim/zid/generate -d '{"store_id":$ZSTORE,"count":3}'

Press Ctrl-C to stop.
EOT
wait
