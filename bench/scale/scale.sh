#!/usr/bin/env bash
# bench/scale — does transfer throughput grow with worker processes?
#
#   bash bench/scale/scale.sh [BUILD_DIR]        (default: build)
#
# The real pipeline, one run per configuration: 1, 2 and 4 `tarheel serve`
# worker processes on one PostgreSQL database (a throwaway server from
# tests/pg/pgtmp.sh, fsync on), and 1 on SQLite. Each run: the emulators
# (Qoyod and Salla) answer every call after 50 ms (a call over the
# internet) with no rate limits; S stores, each on its own Qoyod account;
# an intake-only process receives the webhooks of N generated orders and is
# stopped once every order has its job; then the worker processes start
# together, and the clock runs from their start until every order is
# settled (transferred, or failed for the one item in seven without a SKU).
# Each process runs T worker threads; tarheel's own per-store and
# per-account limits stay at their defaults (2 and 4).
#
# Prints one line per run, then the ratios; the last line is
# scale_ratio_4v1=<orders/s with 4 processes / with 1> (target >= 1.5 on
# the 2-core VM). Environment: SCALE_ORDERS (N, default 160), SCALE_STORES
# (S, default 8), SCALE_THREADS (T, default 2), SCALE_LATENCY_MS (50),
# SCALE_ONLY (below).
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/../.." && pwd)
th=$build/tarheel
sim=$build/tarheel-sim
N=${SCALE_ORDERS:-160} S=${SCALE_STORES:-8} T=${SCALE_THREADS:-2} LAT=${SCALE_LATENCY_MS:-50}
[ -x "$th" ] && [ -x "$sim" ] || { echo "scale: build first (no $th or $sim)" >&2; exit 1; }
work=$(mktemp -d /tmp/th-scale.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  bash "$root/tests/pg/pgtmp.sh" stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
server=$(bash "$root/tests/pg/pgtmp.sh" start "$work/pg")
psql_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)/psql

port() {
  local p
  for _ in $(seq 50); do
    p=$((12000 + RANDOM % 16000))
    (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  echo "scale: no free port" >&2; exit 1
}
wait_http() { for _ in $(seq 200); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "scale: $1 did not answer" >&2; exit 1; }
now() { date +%s.%N; }

settled() { # DB: orders transferred, failed or skipped
  case "$1" in
    postgres*) PGOPTIONS='-c client_min_messages=warning' "$psql_bin" -X -q -At -d "$1" \
                 -c "SELECT count(*) FROM orders WHERE xfer IN (2, 3, 4)" ;;
    *) sqlite3 "$1" "SELECT count(*) FROM orders WHERE xfer IN (2, 3, 4)" ;;
  esac
}
jobs_of() {
  case "$1" in
    postgres*) PGOPTIONS='-c client_min_messages=warning' "$psql_bin" -X -q -At -d "$1" \
                 -c "SELECT count(*) FROM jobs" ;;
    *) sqlite3 "$1" "SELECT count(*) FROM jobs" ;;
  esac
}

# run NAME DB PROCS: prints "NAME orders/s" and sets rate_NAME.
run() {
  local name=$1 db=$2 procs=$3 dir=$work/$1 keys=() run_pids=()
  mkdir -p "$dir"
  for i in $(seq "$S"); do keys+=(--api-key "k$i"); done
  local qp=$(port) sp=$(port) ip=$(port)
  "$sim" qoyod --listen "127.0.0.1:$qp" --rate-limit 0 "${keys[@]}" >"$dir/qoyod.log" 2>&1 &
  run_pids+=($!)
  "$sim" salla --listen "127.0.0.1:$sp" --rate-limit-plan off --webhook-retry-ms 300 \
    --webhook-url "http://127.0.0.1:$ip/webhooks/salla" --webhook-secret whsec >"$dir/salla.log" 2>&1 &
  run_pids+=($!)
  pids+=("${run_pids[@]}")
  wait_http "http://127.0.0.1:$qp/_sim/health"
  wait_http "http://127.0.0.1:$sp/_sim/health"
  for i in $(seq "$S"); do
    local sid=$((9000 + i)) tok
    tok=$(curl -sf "http://127.0.0.1:$sp/_sim/salla/install" -d "{\"store_id\":$sid}" | jq -r .access_token)
    "$th" connect salla --db "$db" --store "$sid" --access-token "$tok" --webhook-secret whsec \
      --qoyod-key "k$i" --qoyod-url "http://127.0.0.1:$qp/2.0" \
      --api-base "http://127.0.0.1:$sp/admin/v2" >>"$dir/connect.log" 2>&1
  done
  # intake only: every order gets its job before any worker starts
  "$th" serve --db "$db" --listen "127.0.0.1:$ip" --workers 0 --poll-interval 0 \
    >"$dir/intake.log" 2>&1 &
  local intake=$!
  pids+=($intake)
  wait_http "http://127.0.0.1:$ip/healthz"
  for i in $(seq "$S"); do
    curl -sf "http://127.0.0.1:$sp/_sim/salla/generate" \
      -d "{\"store_id\":$((9000 + i)),\"count\":$((N / S))}" >/dev/null
  done
  local want=$(((N / S) * S))
  for _ in $(seq 600); do [ "$(jobs_of "$db")" -ge "$want" ] && break; sleep 0.1; done
  [ "$(jobs_of "$db")" -ge "$want" ] || { echo "scale: intake got $(jobs_of "$db") of $want" >&2; exit 1; }
  kill -TERM "$intake"; wait "$intake" 2>/dev/null || true
  # every call to the services takes LAT ms from now on
  [ "$LAT" -gt 0 ] && curl -sf "http://127.0.0.1:$qp/_sim/faults" \
    -d "{\"faults\":[{\"match\":\"* /2.0/*\",\"mode\":\"latency\",\"latency_ms\":$LAT}]}" >/dev/null
  [ "$LAT" -gt 0 ] && curl -sf "http://127.0.0.1:$sp/_sim/faults" \
    -d "{\"faults\":[{\"match\":\"* /admin/v2/*\",\"mode\":\"latency\",\"latency_ms\":$LAT}]}" >/dev/null
  local t0=$(now) wp=()
  for p in $(seq "$procs"); do
    "$th" serve --db "$db" --listen "127.0.0.1:$(port)" --workers "$T" --poll-interval 0 \
      --qoyod-rpm -1 >"$dir/worker$p.log" 2>&1 &
    wp+=($!)
  done
  pids+=("${wp[@]}")
  local done_n=0
  for _ in $(seq 3000); do
    done_n=$(settled "$db")
    [ "$done_n" -ge "$want" ] && break
    sleep 0.1
  done
  local t1=$(now)
  [ "$done_n" -ge "$want" ] || { echo "scale: $name settled $done_n of $want" >&2; exit 1; }
  for p in "${wp[@]}" "${run_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${wp[@]}" "${run_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  local rate
  rate=$(echo "$want $t0 $t1" | awk '{printf "%.2f", $1 / ($3 - $2)}')
  eval "rate_$name=$rate"
  printf '%-8s %d process(es) x %d threads, %d orders of %d stores, %d ms a call: %6.2f orders/s (%.1f s)\n' \
    "$name" "$procs" "$T" "$want" "$S" "$LAT" "$rate" "$(echo "$t0 $t1" | awk '{print $2 - $1}')"
}

mkdb() { bash "$root/tests/pg/pgtmp.sh" createdb "$server" "$1"; }
# SCALE_ONLY=pgN runs one PostgreSQL configuration with N processes and no
# ratios (to compare, say, 1 process x 8 threads with 4 x 2).
if [ -n "${SCALE_ONLY:-}" ]; then
  run "$SCALE_ONLY" "$(mkdb "scale_$SCALE_ONLY")" "${SCALE_ONLY#pg}"
  exit 0
fi
run sqlite1 "$work/sqlite.db" 1
run pg1 "$(mkdb scale_pg1)" 1
run pg2 "$(mkdb scale_pg2)" 2
run pg4 "$(mkdb scale_pg4)" 4
awk -v s="$rate_sqlite1" -v a="$rate_pg1" -v b="$rate_pg2" -v c="$rate_pg4" 'BEGIN {
  printf "pg1_vs_sqlite1=%.2f\n", a / s
  printf "scale_ratio_2v1=%.2f\n", b / a
  printf "scale_ratio_4v1=%.2f\n", c / a }'
