#!/usr/bin/env bash
# Crash rehearsals: kills `tarheel serve` with SIGKILL at each named crash
# point of the pipeline (src/core/crash.h), restarts it, and checks that
# every accepted order ends as exactly one Qoyod invoice (one payment when
# "financial invoice" is on) with an equal total, and that nothing is left
# "transferring".
#
#   scripts/crash-rehearsal.sh BUILD_DIR                 # 1 round per point
#   scripts/crash-rehearsal.sh BUILD_DIR --rounds 20     # the long run
#   scripts/crash-rehearsal.sh BUILD_DIR --points invoice.answered,job.claimed
#
# Each round uses fresh emulators and a fresh database, and picks which hit
# of the point kills (1..orders) at random (seeded by --seed, reproducible).
# Prints one line per round and a summary; exits 1 on any finding.
set -euo pipefail
build=${1:?usage: crash-rehearsal.sh BUILD_DIR [--rounds N] [--points a,b] [--orders N] [--seed S]}
shift
build=$(cd "$build" && pwd)
rounds=1 orders=6 seed=${RANDOM}  # orders ≤ 6: the Salla emulator's 7th lacks a SKU
points="intake.committed,job.claimed,invoice.sending,invoice.answered,payment.answered,order.transferred,token.refreshed"
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --points) points=$2; shift 2 ;;
    --orders) orders=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    *) echo "crash-rehearsal: unknown option $1" >&2; exit 2 ;;
  esac
done
RANDOM=$seed
th=$build/tarheel sim=$build/tarheel-sim
STORE=1305146709 KEY=rehearsal-qoyod-key SECRET=rehearsal-webhook-secret
work=$(mktemp -d /tmp/tarheel-crash.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap 'cleanup; rm -rf "$work"' EXIT

free_port() {
  local p
  for _ in $(seq 50); do
    p=$((12000 + RANDOM % 16000))
    (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  echo "crash-rehearsal: no free port" >&2; exit 1
}
wait_http() { for _ in $(seq 300); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

serve_once() { # log [env...]: starts tarheel serve in the background; sets spid
  local log=$1; shift
  env "$@" "$th" serve --db "$dir/tarheel.db" --listen "127.0.0.1:$TP" \
    --salla-webhook-secret "$SECRET" --salla-api "http://127.0.0.1:$SP/admin/v2" \
    --salla-client-id demo-client --salla-client-secret demo-secret \
    --salla-token-url "http://127.0.0.1:$SP/oauth2/token" \
    --qoyod-url "http://127.0.0.1:$QP/2.0" --qoyod-key "$KEY" --inventory 1 \
    --retry-base-ms 200 --poll-interval 2 --lease 3 >>"$log" 2>&1 &
  spid=$!
  disown "$spid" # no "Killed" notice from bash: the kill is the point
  pids+=("$spid")
}
# serve_up LOG [env...]: serve_once until it answers /healthz. Tests run side
# by side pick ports from one range; when another took ours meanwhile
# ("cannot listen"), move to a free port and point the Salla emulator's
# webhooks there. Returns 1 when tarheel does not come up at all.
serve_up() {
  local log=$1
  for _ in 1 2 3 4 5; do
    serve_once "$@"
    if wait_http "http://127.0.0.1:$TP/healthz"; then return 0; fi
    if kill -0 "$spid" 2>/dev/null || ! grep -q "cannot listen" "$log"; then return 1; fi
    TP=$(free_port)
    curl -sf "http://127.0.0.1:$SP/_sim/salla/app" \
      -d "{\"webhook_url\":\"http://127.0.0.1:$TP/webhooks/salla\"}" >/dev/null || return 1
  done
  return 1
}
stop() { # pid: SIGTERM, then wait until it is gone
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}

# round POINT HIT: one rehearsal; prints its line; returns 1 on a finding.
round() {
  local point=$1 hit=$2
  dir=$work/$point-$hit-$RANDOM
  mkdir -p "$dir"
  QP=$(free_port) SP=$(free_port) TP=$(free_port)
  "$sim" qoyod --listen "127.0.0.1:$QP" --seed 7 --api-key "$KEY" >"$dir/qoyod.log" 2>&1 &
  local qpid=$!
  "$sim" salla --listen "127.0.0.1:$SP" --seed 7 --webhook-url "http://127.0.0.1:$TP/webhooks/salla" \
    --webhook-secret "$SECRET" --webhook-retry-ms 300 >"$dir/salla.log" 2>&1 &
  local slpid=$!
  pids+=("$qpid" "$slpid")
  wait_http "http://127.0.0.1:$QP/_sim/health" && wait_http "http://127.0.0.1:$SP/_sim/health" ||
    { echo "$point: emulators did not start"; return 1; }

  # Setup, without crashes: the store is installed (Easy Mode tokens).
  serve_up "$dir/serve-setup.log" || { echo "$point: tarheel did not start"; return 1; }
  curl -sf "http://127.0.0.1:$SP/_sim/salla/install" -d "{\"store_id\":$STORE}" >/dev/null
  for _ in $(seq 100); do
    "$th" settings --db "$dir/tarheel.db" --store "$STORE" >/dev/null 2>&1 && break
    sleep 0.1
  done
  stop "$spid"
  if [ "$point" = token.refreshed ]; then
    # Due for a refresh (tarheel refreshes a day before expiry).
    sqlite3 "$dir/tarheel.db" "UPDATE connections SET token_expires_at = strftime('%s','now') + 60"
  fi

  # The run that crashes.
  serve_up "$dir/serve-crash.log" TARHEEL_CRASH_AT="$point:$hit" ||
    { echo "$point: tarheel did not start"; return 1; }
  local ids
  ids=$(curl -sf "http://127.0.0.1:$SP/_sim/salla/generate" -d "{\"store_id\":$STORE,\"count\":$orders}" |
    jq -r '.orders[]' | tr '\n' ' ')
  local n=0
  for _ in $(seq 300); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$spid" 2>/dev/null; then
    kill -9 "$spid"
    echo "$point hit $hit: NOT REACHED in 30 s (see $dir/serve-crash.log)"
    return 1
  fi
  grep -q "crash point $point reached" "$dir/serve-crash.log" ||
    { echo "$point hit $hit: the daemon died, but not at the point"; tail -5 "$dir/serve-crash.log"; return 1; }

  # Restart, as an operator's service manager would.
  serve_up "$dir/serve-after.log" || { echo "$point: tarheel did not restart"; return 1; }
  local note=""
  if [ "$point" = token.refreshed ]; then
    # Salla invalidated the old refresh token when it issued the pair the
    # crash lost: the connection needs the app reinstalled (the merchant is
    # told so); orders wait meanwhile. Reinstall, as the merchant would.
    for _ in $(seq 100); do
      "$th" settings --db "$dir/tarheel.db" --store "$STORE" 2>/dev/null | grep -q needs_reinstall && break
      sleep 0.1
    done
    if "$th" settings --db "$dir/tarheel.db" --store "$STORE" 2>/dev/null | grep -q needs_reinstall; then
      note=" (connection lost with the token pair: reinstalled)"
      curl -sf "http://127.0.0.1:$SP/_sim/salla/install" -d "{\"store_id\":$STORE}" >/dev/null
      sleep 1
      "$th" orders retry --failed --db "$dir/tarheel.db" >/dev/null 2>&1 || true
    fi
  fi
  local left total
  for _ in $(seq 600); do
    local list
    list=$("$th" orders list --db "$dir/tarheel.db" 2>/dev/null || true)
    left=$(grep -cE ' (not transferred|transferring) ' <<<"$list" || true)
    total=$(grep -cE '^ *[0-9]+ ' <<<"$list" || true)
    [ "$total" -ge "$orders" ] && [ "$left" = 0 ] && break
    sleep 0.1
  done
  stop "$spid"

  # Checks, against the emulators' own records.
  local bad=0 transferred=0 failed=0 want_pay=0
  "$th" settings --db "$dir/tarheel.db" --store "$STORE" | grep -q 'financial-invoice *on' && want_pay=1
  while read -r id num status state rest; do
    case "$state" in
      transferred)
        transferred=$((transferred + 1))
        local inv pay
        inv=$(curl -sf -H "API-KEY: $KEY" -G "http://127.0.0.1:$QP/2.0/invoices" \
          --data-urlencode "q[reference_eq]=$num" | grep -o '"reference":"[^"]*"' | wc -l)
        pay=$(curl -sf -H "API-KEY: $KEY" -G "http://127.0.0.1:$QP/2.0/invoice_payments" \
          --data-urlencode "q[reference_eq]=PAY-$num" | grep -o '"reference":"[^"]*"' | wc -l)
        [ "$inv" = 1 ] || { echo "  order $id: $inv invoices"; bad=1; }
        [ "$pay" = "$want_pay" ] || { echo "  order $id: $pay payments (want $want_pay)"; bad=1; } ;;
      failed)
        # The rehearsal's orders are all transferable (the emulator's order
        # without SKU is every 7th): a failure here is a finding.
        failed=$((failed + 1))
        echo "  order $id: failed: $("$th" orders show "$id" --db "$dir/tarheel.db" 2>/dev/null |
          grep -m1 -i reason || true)"
        bad=1 ;;
      *) echo "  order $id: still '$state'"; bad=1 ;;
    esac
  done < <("$th" orders list --db "$dir/tarheel.db" | sed -n '2,$p' | grep -E '^ *[0-9]+ ' |
    sed -E 's/not transferred/not_transferred/' | awk '{print $1, $2, $3, $4}')
  "$th" orders list --db "$dir/tarheel.db" | awk '$4=="transferred" && $6!=$7 {exit 1}' ||
    { echo "  a transferred order's total differs from its invoice"; bad=1; }
  [ "$total" -ge "$orders" ] || { echo "  only $total of $orders orders known"; bad=1; }
  kill "$qpid" "$slpid" 2>/dev/null || true
  if [ $bad = 0 ]; then
    echo "$point hit $hit: ok, $transferred orders, each one invoice$([ $want_pay = 1 ] && echo " and one payment")$note"
    rm -rf "$dir"
  else
    echo "$point hit $hit: FINDING (state kept in $dir)"
  fi
  return $bad
}

findings=0 ran=0
IFS=, read -r -a plist <<<"$points"
for r in $(seq "$rounds"); do
  for p in "${plist[@]}"; do
    hit=$((1 + RANDOM % orders))
    case "$p" in token.refreshed) hit=1 ;; esac
    ran=$((ran + 1))
    round "$p" "$hit" || { findings=$((findings + 1)); trap - EXIT; cleanup; }
  done
done
echo "crash rehearsal: $ran rounds over ${#plist[@]} points (seed $seed), $findings with findings"
[ $findings = 0 ]
