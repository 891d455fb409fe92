#!/usr/bin/env bash
# make demo: starts the three emulators with sample data and prints what to try.
# (Until the order pipeline lands this is the whole demo; see README.md.)
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sim=$build/tarheel-sim
state=${TARHEEL_DEMO_DIR:-$(mktemp -d /tmp/tarheel-demo.XXXXXX)}
QP=${QOYOD_PORT:-9100} SP=${SALLA_PORT:-9200} ZP=${ZID_PORT:-9300}

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

start() {
  local name=$1 port=$2; shift 2
  "$sim" "$name" --listen "127.0.0.1:$port" --seed 7 --state "$state/$name.json" "$@" \
    >"$state/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$port/_sim/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "demo: the $name emulator did not start; see $state/$name.log" >&2
  exit 1
}

start qoyod "$QP" --api-key demo-key
start salla "$SP"
start zid "$ZP"
[ -x scripts/demo-seed.sh ] && bash scripts/demo-seed.sh "$QP" "$SP" "$ZP"

cat <<EOT

tarheel demo: three emulators are running (state and logs in $state).

  Qoyod  http://127.0.0.1:$QP   (API key: demo-key)
  Salla  http://127.0.0.1:$SP
  Zid    http://127.0.0.1:$ZP

Try:
  curl -s -H 'API-KEY: demo-key' http://127.0.0.1:$QP/2.0/inventories
  curl -s http://127.0.0.1:$SP/_sim/health
  curl -s http://127.0.0.1:$QP/_sim/faults -d '{"match":"POST /2.0/invoices","mode":"commit_then_drop","count":1}'

Every endpoint and fault mode: sim/README.md. Press Ctrl-C to stop.
EOT
if [ "${TARHEEL_DEMO_EXIT:-0}" = 1 ]; then exit 0; fi
wait
