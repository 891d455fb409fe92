#!/usr/bin/env bash
# The whole pipeline (Salla emulator → tarheel intake → worker → Qoyod
# emulator) with faults on every side at once: duplicated, reordered, badly
# signed and slow webhooks; failing Salla order reads; lost Qoyod answers
# after the write (commit-then-drop), 503s, resets, 429 with Retry-After and
# latency. The demo's own check must still hold: every transferable order is
# exactly one invoice with an equal total, every other one failed with a
# reason. (Lost webhooks need the catch-up poll of issue 4: not here.)
set -euo pipefail
build=$1 src=$2
source "$src/tests/integration/lib.sh"
# Free ports, so that runs side by side (ctest -j, two checkouts) never meet.
export QOYOD_PORT=$(port) SALLA_PORT=$(port) ZID_PORT=$(port) TARHEEL_PORT=$(port)
export DEMO_CALLBACK_PORT=$(port) DEMO_ORDERS=20
export DEMO_WAIT_ROUNDS=400
# Faults come often here: retry after 200 ms, doubling, not after 1 s.
export TARHEEL_SERVE_ARGS="--retry-base-ms 200"
export TARHEEL_DEMO_DIR=$tmp
export DEMO_SALLA_FAULTS='{"faults":[
 {"match":"webhook order.*","mode":"duplicate","probability":0.3},
 {"match":"webhook order.*","mode":"out_of_order","probability":0.2},
 {"match":"webhook order.*","mode":"bad_signature","count":3},
 {"match":"webhook order.*","mode":"slow_receiver","count":2,"latency_ms":1},
 {"match":"GET /admin/v2/orders/*","mode":"error","status":500,"probability":0.2},
 {"match":"GET /admin/v2/orders/*","mode":"rate_limit","retry_after":1,"count":2}]}'
export DEMO_QOYOD_FAULTS='{"faults":[
 {"match":"POST /2.0/invoices","mode":"commit_then_drop","probability":0.25},
 {"match":"POST /2.0/invoice_payments","mode":"commit_then_drop","probability":0.2},
 {"match":"* /2.0/*","mode":"error","status":503,"probability":0.08},
 {"match":"POST /2.0/*","mode":"reset","probability":0.05},
 {"match":"POST /2.0/invoices","mode":"rate_limit","retry_after":1,"count":3},
 {"match":"* /2.0/*","mode":"latency","latency_ms":30,"probability":0.2}]}'
"$build/tarheel" demo --exit-when-done
