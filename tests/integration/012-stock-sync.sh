#!/usr/bin/env bash
# Stock sync end to end (docs/STOCK.md), with `tarheel serve` and the
# emulators: a Salla store with stock sync on (every 10 s); Qoyod already
# holds its products with the store's counts. Orders sold in the store
# become invoices that take stock in Qoyod, and no stock write goes back to
# the store (no feedback loop). A purchase bill recorded in Qoyod reaches the
# store's count within one poll interval, as one bulk call.
set -euo pipefail
build=$1
. "$(dirname "$0")/lib.sh"

TP=$(port)
S=4242
start qoyod --api-key demo-key --rate-limit 0
start salla --webhook-url "http://127.0.0.1:$TP/webhooks/salla" --webhook-secret whsec \
  --webhook-retry-ms 200 --rate-limit-plan off
db="$tmp/t.db"
"$build/tarheel" serve --db "$db" --listen "127.0.0.1:$TP" --retry-base-ms 100 \
  --salla-webhook-secret whsec --salla-api "$url_salla/admin/v2" \
  --qoyod-url "$url_qoyod/2.0" --qoyod-key demo-key --inventory 1 >"$tmp/serve.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$TP/healthz" >/dev/null && break; sleep 0.05; done

Q=(-H 'API-KEY: demo-key' -H 'Content-Type: application/json')
# The store's tracked products, already in Qoyod with the same counts.
for p in TSH-BLK-M:120 TSH-WHT-L:80 MUG-001:200 PERF-50:40 DATES-1KG:300; do
  curl -sf "${Q[@]}" "$url_qoyod/_sim/qoyod/products" \
    -d "{\"sku\":\"${p%%:*}\",\"inventories\":[{\"id\":1,\"stock\":\"${p##*:}\"}]}" >/dev/null
done
# (the emulator answers with the tokens it minted: the test reads the store
# with them, as the merchant would; tarheel's copy is sealed at rest)
curl -sf "$url_salla/_sim/salla/install" -d "{\"store_id\":$S}" >"$tmp/tokens.json"
for _ in $(seq 50); do
  "$build/tarheel" settings --db "$db" --store $S >/dev/null 2>&1 && break
  sleep 0.1
done
"$build/tarheel" settings --db "$db" --store $S --stock-sync on --stock-interval 10 >"$tmp/settings.out" 2>&1 ||
  fail "settings --stock-sync"
grep -q "stock-sync            on" "$tmp/settings.out" || fail "stock sync not shown on"
grep -q "stock-interval        10 s" "$tmp/settings.out" || fail "interval not shown"

# polled_at of the store's stock poll, unix ms (0 before the first).
polled() { sqlite3 "$db" "select coalesce(max(qoyod_id), 0) from mappings where kind = 'stock' and key = 'polled_at'"; }
# wait_round AFTER_MS: until a stock round started after that instant (25 s).
wait_round() {
  for _ in $(seq 250); do [ "$(polled)" -gt "$1" ] && return 0; sleep 0.1; done
  fail "no stock round after $1"
}
wait_round 0
[ "$(sqlite3 "$db" "select count(*) from stock where has_qty = 1")" = 5 ] || fail "counts not recorded"

# Orders sold in the store: invoices take stock in Qoyod.
curl -sf "$url_salla/_sim/salla/generate" -d "{\"store_id\":$S,\"count\":6}" >/dev/null
for _ in $(seq 200); do
  n=$("$build/tarheel" orders list --db "$db" 2>/dev/null | grep -cE ' (transferred|failed) ' || true)
  [ "$n" = 6 ] && break
  sleep 0.1
done
[ "$n" = 6 ] || fail "6 orders should be settled, $n are"
sold=$(curl -sf "${Q[@]}" "$url_qoyod/2.0/products?per_page=100" |
  jq '[.products[] | select(.track_quantity) | .inventories[] | select(.id == 1) | .stock | tonumber] | add')
[ "${sold%.*}" -lt 740 ] || fail "the invoices took no stock in Qoyod (total $sold of 740)"
after=$(($(date +%s%3N) + 100))
wait_round "$after"
bulk=$(curl -sf "$url_salla/_sim/requests?since=0" |
  jq '[.requests[] | select(.path == "/admin/v2/products/quantities/bulk")] | length')
[ "$bulk" = 0 ] || fail "tarheel's own invoices bounced back to the store: $bulk stock writes"

# A purchase in Qoyod: 25 mugs. The store shows them within one interval.
mug=$(curl -sf "${Q[@]}" -G "$url_qoyod/2.0/products" --data-urlencode 'q[sku_eq]=MUG-001' | jq '.products[0].id')
vendor=$(curl -sf "${Q[@]}" "$url_qoyod/2.0/customers" -d '{"contact":{"name":"Supplier"}}' | jq '.contact.id')
T=(-H "Authorization: Bearer $(jq -r .access_token "$tmp/tokens.json")")
qty() { curl -sf "${T[@]}" "$url_salla/admin/v2/products/sku/MUG-001" | jq '.data.quantity'; }
before=$(qty)
t0=$(date +%s)
curl -sf "${Q[@]}" "$url_qoyod/2.0/bills" -d "{\"bill\":{\"contact_id\":$vendor,\"status\":\"Approved\",
  \"issue_date\":\"2026-11-23\",\"due_date\":\"2026-11-23\",\"inventory_id\":1,
  \"line_items\":[{\"product_id\":$mug,\"quantity\":25,\"unit_price\":12}]}}" >/dev/null || fail "bill"
now=$before
for _ in $(seq 130); do
  now=$(qty)
  [ "$now" = $((before + 25)) ] && break
  sleep 0.1
done
took=$(($(date +%s) - t0))
[ "$now" = $((before + 25)) ] || fail "the store shows $now mugs, want $((before + 25)), $took s after the bill"
[ "$took" -le 13 ] || fail "the purchase took $took s to reach the store (interval 10 s)"
bulk=$(curl -sf "$url_salla/_sim/requests?since=0" |
  jq '[.requests[] | select(.path == "/admin/v2/products/quantities/bulk")] | length')
[ "$bulk" = 1 ] || fail "one purchase should be one stock write, got $bulk"
echo "ok: stock sync (purchase reached the store in ${took} s; no feedback from 6 orders)"
