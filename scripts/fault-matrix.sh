#!/usr/bin/env bash
# The fault matrix: many orders through the emulators with every fault mode
# on at once, on both sides (tests/integration/005 is its short form):
# Salla webhooks duplicated, reordered, badly signed, slow and lost; Salla
# order reads failing with 500 and 429; Qoyod answers lost after the write
# (commit-then-drop) for invoices, payments and products, 503s, connection
# resets, 429 bursts with Retry-After, latency. Then counts, from the
# emulators' own records: orders lost (known to the store, not to tarheel or
# not settled), orders with more than one invoice, invoices whose total
# differs from the order's. All must be zero; exits 1 otherwise.
#
#   scripts/fault-matrix.sh BUILD_DIR [SALLA_ORDERS [ZID_ORDERS]]   (default 1000, 200)
set -euo pipefail
build=${1:?usage: fault-matrix.sh BUILD_DIR [SALLA_ORDERS [ZID_ORDERS]]}
build=$(cd "$build" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((12000 + RANDOM % 16000))
    (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  exit 1
}
export QOYOD_PORT=$(free_port) SALLA_PORT=$(free_port) ZID_PORT=$(free_port)
export TARHEEL_PORT=$(free_port) DEMO_CALLBACK_PORT=$(free_port)
export DEMO_ORDERS=${2:-1000} DEMO_ZID_ORDERS=${3:-200}
export DEMO_WAIT_ROUNDS=$(( (DEMO_ORDERS + DEMO_ZID_ORDERS) * 5 + 600 ))
# Faults are the point: retry soon; the emulator has no call budget, so
# tarheel's own (240/min, for the real Qoyod) is lifted.
export TARHEEL_SERVE_ARGS="--retry-base-ms 200 --qoyod-rpm 100000 --poll-interval 20"
export TARHEEL_DEMO_DIR=$(mktemp -d /tmp/tarheel-matrix.XXXXXX)
export DEMO_SALLA_FAULTS='{"faults":[
 {"match":"webhook order.*","mode":"duplicate","probability":0.3},
 {"match":"webhook order.*","mode":"out_of_order","probability":0.2},
 {"match":"webhook order.*","mode":"bad_signature","count":20},
 {"match":"webhook order.*","mode":"slow_receiver","count":10,"latency_ms":1},
 {"match":"webhook order.*","mode":"lose","probability":0.05},
 {"match":"GET /admin/v2/orders/*","mode":"error","status":500,"probability":0.1},
 {"match":"GET /admin/v2/orders/*","mode":"rate_limit","retry_after":1,"count":10}]}'
export DEMO_QOYOD_FAULTS='{"faults":[
 {"match":"POST /2.0/invoices","mode":"commit_then_drop","probability":0.2},
 {"match":"POST /2.0/invoice_payments","mode":"commit_then_drop","probability":0.2},
 {"match":"POST /2.0/products","mode":"commit_then_drop","probability":0.2},
 {"match":"POST /2.0/customers","mode":"commit_then_drop","probability":0.1},
 {"match":"* /2.0/*","mode":"error","status":503,"probability":0.05},
 {"match":"POST /2.0/*","mode":"reset","probability":0.03},
 {"match":"POST /2.0/invoices","mode":"rate_limit","retry_after":1,"count":20},
 {"match":"* /2.0/*","mode":"latency","latency_ms":20,"probability":0.1}]}'
start=$(date +%s)
rc=0
bash "$root/scripts/demo.sh" "$build" --exit-when-done >"$TARHEEL_DEMO_DIR/matrix.out" 2>&1 || rc=$?
took=$(( $(date +%s) - start ))
grep -E "^demo: (order|a transferred|OK)|^Qoyod:" "$TARHEEL_DEMO_DIR/matrix.out" | tail -20 || true
db=$TARHEEL_DEMO_DIR/tarheel.db
list=$("$build/tarheel" orders list --db "$db")
known=$(grep -cE '^ *[0-9]+ ' <<<"$list" || true)
xfer=$(grep -cE ' transferred ' <<<"$list" || true)
failed=$(grep -cE ' failed ' <<<"$list" || true)
placed=$((DEMO_ORDERS + DEMO_ZID_ORDERS))
if [ "$known" -lt "$placed" ]; then
  echo "fault matrix: $((placed - known)) orders LOST (placed in the stores, unknown to tarheel)"
  rc=1
fi
echo "fault matrix: $placed orders placed, $known known to tarheel," \
  "$xfer transferred (one invoice each, equal totals: checked by the demo), $failed failed" \
  "with a reason (the emulator's orders without SKU), ${took}s; demo check exit $rc"
if [ $rc = 0 ]; then rm -rf "$TARHEEL_DEMO_DIR"; else echo "state kept in $TARHEEL_DEMO_DIR"; fi
exit $rc
