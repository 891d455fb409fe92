#!/usr/bin/env bash
# Old orders from the command line (issue 4, the seeds' "Pull Orders" then
# "Transfer"): `tarheel orders pull` against the Salla emulator records
# exactly the orders created in the range as not transferred, with no job
# and nothing sent to Qoyod; a pull stopped at --max-pages and one stopped
# by a failing order continue where they stopped, and no order is fetched
# twice; a finished range says so. The progress is plain lines in a log and
# a bar on a terminal. `tarheel orders transfer --from --to` refuses without
# a terminal or --yes, asks with the count on a terminal, and with --yes
# makes exactly one invoice per order it can send; a second time it sends
# only the failed ones again. The REST API's pull reaches done with the
# count the CLI saw.
set -euo pipefail
build=$1
. "$(dirname "$0")/lib.sh"
requests() { # requests URL METHOD PATH_REGEX STATUS: how many the emulator logged
  curl -sf "$1/_sim/requests" | jq --arg m "$2" --arg p "$3" --argjson s "$4" \
    '[(.requests // .)[] | select(.method == $m and (.path | test($p)) and .status == $s)] | length'
}

# The emulators start in this shell (lib.sh's start), not in a $(...)
# subshell, so their pids reach `pids` and cleanup stops them.
start qoyod --api-key demo-key
start salla --rate-limit-plan off
Q=$url_qoyod S=$url_salla
STORE=1305146709
T=$(curl -sf "$S/_sim/salla/install" -d "{\"store_id\":$STORE}" | jq -r .access_token)
# Enough stock that no product sells out: the orders below are the
# emulator's seeded sequence (its every 7th order has an item without SKU).
curl -sf "$S/_sim/salla/stock" -d "{\"store_id\":$STORE,\"quantity\":100000}" >/dev/null
gen() { curl -sf "$S/_sim/salla/generate" -d "{\"store_id\":$STORE,\"count\":$1,\"from\":\"$2\",\"to\":\"$3\"}" | jq -c .orders; }
before=$(gen 30 2023-10-01 "2023-10-31 23:59:59")
inside=$(gen 130 2023-11-01 2024-02-01)
after=$(gen 25 2024-02-02 2024-02-20)
db="$tmp/t.db"
TH=("$build/tarheel")
"${TH[@]}" connect salla --db "$db" --store $STORE --access-token "$T" --webhook-secret whsec \
  --qoyod-key demo-key --qoyod-url "$Q/2.0" --api-base "$S/admin/v2" >"$tmp/connect.out" 2>&1 ||
  fail "connect"
qlog=$(curl -sf "$Q/_sim/requests" | jq '(.requests // .) | length') # connect checked the key
PULL=(orders pull --db "$db" --store $STORE --from 2023-11-01 --to 2024-02-01 --retry-base-ms 1)

# --- one page (60 a page), then a failing order on page 2, then the rest
"${TH[@]}" "${PULL[@]}" --max-pages 1 >"$tmp/pull1.out" 2>&1 || fail "pull --max-pages 1"
grep -q "Stopped at --max-pages after pulling 60 of 130 orders created 2023-11-01..2024-02-01" \
  "$tmp/pull1.out" || fail "pull 1 did not stop at page 1: $(cat "$tmp/pull1.out")"
grep -q "^listing orders: page 3, 130 found$" "$tmp/pull1.out" || fail "no listing lines"
bad=$(jq '.[99]' <<<"$inside") # page 2, its 40th order
curl -sf "$S/_sim/faults" \
  -d "{\"match\":\"GET /admin/v2/orders/$bad\",\"mode\":\"error\",\"status\":500,\"count\":5}" >/dev/null
set +e
"${TH[@]}" "${PULL[@]}" >"$tmp/pull2.out" 2>&1
rc=$?
set -e
[ $rc = 1 ] || fail "a pull stopped by a failing order exited $rc, want 1"
grep -q "99 of 130 orders are pulled" "$tmp/pull2.out" || fail "pull 2: $(cat "$tmp/pull2.out")"
grep -q "to continue: tarheel orders pull --store $STORE --platform salla --from 2023-11-01 --to 2024-02-01" \
  "$tmp/pull2.out" || fail "pull 2 does not say how to continue"
"${TH[@]}" "${PULL[@]}" >"$tmp/pull3.out" 2>&1 || fail "pull 3: $(cat "$tmp/pull3.out")"
grep -q "^130 orders in the range, 60 of them pulled by an earlier run$" "$tmp/pull3.out" ||
  fail "pull 3 did not resume after page 1"
grep -q "^pulled 130/130$" "$tmp/pull3.out" || fail "pull 3 has no final progress line"
grep -q "Pulled 130 orders created 2023-11-01..2024-02-01 from salla store $STORE: 31 new, listed as not transferred; 39 known already, kept as they were (continued from an earlier run)." \
  "$tmp/pull3.out" || fail "pull 3 summary: $(cat "$tmp/pull3.out")"
grep -q "Nothing was sent to Qoyod" "$tmp/pull3.out" || fail "pull 3 does not say nothing was sent"

# exactly the range, each order fetched once, no job, nothing sent
n=$(sqlite3 "$db" "select count(*) from orders where xfer = 0")
[ "$n" = 130 ] || fail "$n orders recorded as not transferred, want 130"
for id in $(jq '.[]' <<<"$before $after"); do
  [ "$(sqlite3 "$db" "select count(*) from orders where order_id = $id")" = 0 ] ||
    fail "order $id outside the range was recorded"
done
for id in $(jq '.[]' <<<"$inside"); do
  [ "$(sqlite3 "$db" "select xfer from orders where order_id = $id")" = 0 ] ||
    fail "order $id of the range is not recorded as not transferred"
done
[ "$(requests "$S" GET '^/admin/v2/orders/[0-9]+$' 200)" = 130 ] || fail "orders fetched more than once"
[ "$(requests "$S" GET "^/admin/v2/orders/$bad\$" 500)" = 5 ] || fail "the failing order was not tried 5 times"
[ "$(sqlite3 "$db" "select count(*) from jobs")" = 0 ] || fail "the pull queued jobs"
[ "$(curl -sf "$Q/_sim/requests" | jq '(.requests // .) | length')" = "$qlog" ] || fail "the pull talked to Qoyod"
"${TH[@]}" orders list --db "$db" >"$tmp/list.out" 2>&1 || fail "orders list"
[ "$(grep -c "not transferred" "$tmp/list.out")" = 130 ] || fail "orders list does not show 130 not transferred"

# --- a finished range says so and asks nothing
lists=$(requests "$S" GET '^/admin/v2/orders$' 200)
"${TH[@]}" "${PULL[@]}" >"$tmp/pull4.out" 2>&1 || fail "pull 4"
grep -q "were pulled already (130 orders)" "$tmp/pull4.out" || fail "pull 4: $(cat "$tmp/pull4.out")"
[ "$(requests "$S" GET '^/admin/v2/orders$' 200)" = "$lists" ] || fail "a finished range was listed again"

# --- on a terminal: the bar
script -qec "${TH[*]} ${PULL[*]} --again" /dev/null >"$tmp/tty.out" 2>&1 </dev/null || fail "pull on a terminal"
grep -q "pulled 130/130 ▕████████████████████████▏" "$tmp/tty.out" || fail "no progress bar: $(cat -v "$tmp/tty.out" | tail -3)"
grep -q "130 known already" "$tmp/tty.out" || fail "pull --again fetched orders it knew"
[ "$(requests "$S" GET '^/admin/v2/orders/[0-9]+$' 200)" = 130 ] || fail "--again fetched known orders"

# --- transfer a range: refused without a terminal or --yes; asked on a terminal
XFER=(orders transfer --db "$db" --store $STORE --from 2023-11-01 --to 2023-11-10)
set +e
"${TH[@]}" "${XFER[@]}" </dev/null >"$tmp/xfer0.out" 2>&1
rc=$?
set -e
[ $rc = 2 ] || fail "transfer without --yes and without a terminal exited $rc, want 2"
grep -q "stdin is not a terminal to confirm it: add --yes" "$tmp/xfer0.out" || fail "no reason: $(cat "$tmp/xfer0.out")"
# what the emulator holds: orders created 11-01..11-10 (Riyadh), and those whose items all have a SKU
want=$(curl -sf "$S/_sim/salla/orders" | jq '[.orders[] | select(.date.date >= "2023-11-01" and .date.date < "2023-11-11")] | length')
ok=$(curl -sf "$S/_sim/salla/orders" | jq '[.orders[] | select(.date.date >= "2023-11-01" and .date.date < "2023-11-11")
       | select(all(.items[]; .sku != ""))] | length')
[ "$want" -gt 5 ] && [ "$ok" -lt "$want" ] || fail "the range should hold orders with and without SKUs ($ok of $want)"
echo n | script -qec "${TH[*]} ${XFER[*]}" /dev/null >"$tmp/xfer1.out" 2>&1 || fail "transfer answered no"
grep -q "Transfer $want orders created 2023-11-01..2023-11-10 to Qoyod? \[y/N\]" "$tmp/xfer1.out" ||
  fail "no confirmation with the count: $(cat "$tmp/xfer1.out")"
grep -q "Nothing was transferred." "$tmp/xfer1.out" || fail "no answer to no"
[ "$(sqlite3 "$db" "select count(*) from jobs")" = 0 ] || fail "no queued jobs"

# --- --yes: exactly one invoice per order that can be sent
"${TH[@]}" "${XFER[@]}" --yes >"$tmp/xfer2.out" 2>&1 || fail "transfer --yes: $(cat "$tmp/xfer2.out")"
grep -q "^queued $want orders created 2023-11-01..2023-11-10$" "$tmp/xfer2.out" || fail "xfer2: $(cat "$tmp/xfer2.out")"
grep -q "^transferred $ok, failed $((want - ok))$" "$tmp/xfer2.out" || fail "xfer2 outcome: $(cat "$tmp/xfer2.out")"
[ "$(requests "$Q" POST '^/2.0/invoices$' 201)" = "$ok" ] || fail "$(requests "$Q" POST '^/2.0/invoices$' 201) invoices, want $ok"
[ "$(sqlite3 "$db" "select count(*) from orders where xfer = 2")" = "$ok" ] || fail "transferred count"
# again: only the failed ones are waiting; no second invoice
"${TH[@]}" "${XFER[@]}" --yes >"$tmp/xfer3.out" 2>&1 || fail "transfer again"
grep -q "^queued $((want - ok)) orders created" "$tmp/xfer3.out" || fail "xfer3: $(cat "$tmp/xfer3.out")"
[ "$(requests "$Q" POST '^/2.0/invoices$' 201)" = "$ok" ] || fail "a second transfer made invoices again"

# --- the REST API: a pull of another range reaches done with the CLI's count
"${TH[@]}" orders pull --db "$db" --store $STORE --from 2023-10-01 --to 2023-10-31 >"$tmp/pull5.out" 2>&1 ||
  fail "pull October"
grep -q "Pulled 30 orders created 2023-10-01..2023-10-31" "$tmp/pull5.out" || fail "October: $(cat "$tmp/pull5.out")"
p=$(port)
TARHEEL_API_TOKEN=pull-test-token-0123456789 "${TH[@]}" serve --db "$db" --listen "127.0.0.1:$p" \
  --workers 0 --poll-interval 0 >"$tmp/serve.out" 2>&1 &
pids+=($!)
wait_for "listening on" "$tmp/serve.out"
API="http://127.0.0.1:$p/api/v1"
H=(-H "Authorization: Bearer pull-test-token-0123456789")
id=$(curl -sf "${H[@]}" "$API/pulls" -d "{\"connection\":\"salla:$STORE\",\"from\":\"2024-02-02\",\"to\":\"2024-02-20\"}" | jq .id)
[ "$id" -ge 1 ] || fail "POST /pulls gave no id"
for _ in $(seq 200); do
  curl -sf "${H[@]}" "$API/pulls/$id" >"$tmp/pull.json"
  [ "$(jq -r .state "$tmp/pull.json")" = running ] || break
  sleep 0.05
done
jq -e '.state == "done" and .pulled == 25 and .total == 25 and .added == 25 and .error == null' \
  "$tmp/pull.json" >/dev/null || fail "API pull: $(cat "$tmp/pull.json")"
n=$(curl -sf "${H[@]}" "$API/orders/transfer" \
  -d "{\"connection\":\"salla:$STORE\",\"from\":\"2024-02-02\",\"to\":\"2024-02-20\",\"dry_run\":true}" | jq .count)
[ "$n" = 25 ] || fail "dry run counts $n, want 25"
[ "$(sqlite3 "$db" "select count(*) from orders")" = 185 ] || fail "every generated order is known now"
echo "ok"
