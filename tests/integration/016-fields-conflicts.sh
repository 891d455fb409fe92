#!/usr/bin/env bash
# Product fields both ways (docs/FIELDS.md), end to end with `tarheel serve`
# and the emulators: a Salla store installed through Easy Mode whose
# products Qoyod already holds. `tarheel fields sync` aligns them at first
# sight (cost from Qoyod, name and price from the store); a price changed in
# the store reaches Qoyod; a cost both sides changed differently becomes a
# conflict, Qoyod's cost wins, and it is listed by `tarheel conflicts` and
# GET /api/v1/conflicts; `conflicts resolve --keep store` puts the store's
# cost on both sides; resolving twice fails; a last pass writes nothing.
set -euo pipefail
build=$1
. "$(dirname "$0")/lib.sh"

TP=$(port)
S=4242
start qoyod --api-key demo-key --rate-limit 0
start salla --webhook-url "http://127.0.0.1:$TP/webhooks/salla" --webhook-secret whsec \
  --webhook-retry-ms 200 --rate-limit-plan off
db="$tmp/t.db"
TOKEN=fields-test-token-0123456789abcdef
TARHEEL_API_TOKEN=$TOKEN "$build/tarheel" serve --db "$db" --listen "127.0.0.1:$TP" \
  --salla-webhook-secret whsec --salla-api "$url_salla/admin/v2" \
  --qoyod-url "$url_qoyod/2.0" --qoyod-key demo-key --inventory 1 >"$tmp/serve.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$TP/healthz" >/dev/null && break; sleep 0.05; done

Q=(-H 'API-KEY: demo-key' -H 'Content-Type: application/json')
# Qoyod's twins of the store's products: same names and prices; MUG-001's
# cost differs (Qoyod knows it from a purchase bill).
for p in "TSH-BLK-M:تي شيرت أسود:79:30" "MUG-001:كوب قهوة:35:14.5" "PERF-50:عطر عود ٥٠ مل:249:90"; do
  IFS=: read -r sku name price cost <<<"$p"
  curl -sf "${Q[@]}" "$url_qoyod/_sim/qoyod/products" -d "{\"sku\":\"$sku\",\"name_ar\":\"$name\",
    \"name_en\":\"$name\",\"selling_price\":\"$price\",\"buying_price\":\"$cost\"}" >/dev/null
done
curl -sf "$url_salla/_sim/salla/install" -d "{\"store_id\":$S}" >"$tmp/tokens.json"
for _ in $(seq 50); do
  "$build/tarheel" settings --db "$db" --store $S >/dev/null 2>&1 && break
  sleep 0.1
done
"$build/tarheel" settings --db "$db" --store $S >"$tmp/settings.out" || fail "settings"
grep -q "fields-sync           off" "$tmp/settings.out" || fail "field sync should be off by default"
grep -q "cost-source           qoyod" "$tmp/settings.out" || fail "cost should come from Qoyod by default"
grep -q "price-source          store" "$tmp/settings.out" || fail "price should come from the store by default"

T=(-H "Authorization: Bearer $(jq -r .access_token "$tmp/tokens.json")" -H 'Content-Type: application/json')
sid() { curl -sf "${T[@]}" "$url_salla/admin/v2/products/sku/$1" | jq -r '.data.id'; }
store_cost() { curl -sf "${T[@]}" "$url_salla/admin/v2/products/sku/$1" | jq -r '.data.cost_price | tonumber'; }
store_price() { curl -sf "${T[@]}" "$url_salla/admin/v2/products/sku/$1" | jq -r '.data.price.amount'; }
qid() { curl -sf "${Q[@]}" -G "$url_qoyod/2.0/products" --data-urlencode "q[sku_eq]=$1" | jq '.products[0].id'; }
qfield() { curl -sf "${Q[@]}" -G "$url_qoyod/2.0/products" --data-urlencode "q[sku_eq]=$1" | jq -r ".products[0].$2 | tonumber"; }

# 1. First sight: MUG-001's cost differs; Qoyod's wins (the cost source).
"$build/tarheel" fields sync --db "$db" --store $S --json >"$tmp/pass1.json" || fail "first pass"
[ "$(jq .compared "$tmp/pass1.json")" = 3 ] || fail "3 SKUs should be compared: $(cat "$tmp/pass1.json")"
[ "$(jq .to_store "$tmp/pass1.json")" = 1 ] || fail "one cost should go to the store: $(cat "$tmp/pass1.json")"
[ "$(jq .no_sku "$tmp/pass1.json")" -ge 1 ] || fail "the product without SKU should be counted"
[ "$(store_cost MUG-001)" = 14.5 ] || fail "MUG-001's cost in the store: $(store_cost MUG-001), want 14.5"

# 2. The store raises a price; both sides change a cost differently.
sleep 1
curl -sf -X PUT "${T[@]}" "$url_salla/admin/v2/products/$(sid PERF-50)" -d '{"price":259}' >/dev/null
curl -sf -X PUT "${T[@]}" "$url_salla/admin/v2/products/$(sid TSH-BLK-M)" -d '{"cost_price":31}' >/dev/null
curl -sf -X PUT "${Q[@]}" "$url_qoyod/2.0/products/$(qid TSH-BLK-M)" \
  -d '{"product":{"buying_price":"32.5"}}' >/dev/null
"$build/tarheel" fields sync --db "$db" --store $S >"$tmp/pass2.out" || fail "second pass"
grep -q "1 to Qoyod" "$tmp/pass2.out" || fail "the price should go to Qoyod: $(cat "$tmp/pass2.out")"
grep -q "1 conflicts recorded" "$tmp/pass2.out" || fail "one conflict: $(cat "$tmp/pass2.out")"
[ "$(qfield PERF-50 selling_price)" = 259 ] || fail "PERF-50 in Qoyod: $(qfield PERF-50 selling_price)"
[ "$(store_cost TSH-BLK-M)" = 32.5 ] || fail "Qoyod's cost should win: store has $(store_cost TSH-BLK-M)"

# 3. The review list: CLI and API.
"$build/tarheel" conflicts --db "$db" --json >"$tmp/conflicts.json" || fail "conflicts --json"
[ "$(jq .count "$tmp/conflicts.json")" = 1 ] || fail "one open conflict: $(cat "$tmp/conflicts.json")"
jq -e '.conflicts[0] | .sku == "TSH-BLK-M" and .field == "cost" and .store_value == 3100 and
  .qoyod_value == 3250 and .last_store_value == 3000 and .winner == "qoyod"' "$tmp/conflicts.json" >/dev/null ||
  fail "conflict shape: $(cat "$tmp/conflicts.json")"
id=$(jq .conflicts[0].id "$tmp/conflicts.json")
"$build/tarheel" conflicts --db "$db" --store $S | grep -q "TSH-BLK-M" || fail "conflicts lists no SKU"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$TP/api/v1/conflicts")
[ "$code" = 401 ] || fail "GET /api/v1/conflicts without a token: $code"
api=$(curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$TP/api/v1/conflicts?connection=salla:$S")
[ "$(jq .count <<<"$api")" = 1 ] || fail "API conflicts: $api"

# 4. Keep the store's cost: both sides get it; a second resolve fails.
"$build/tarheel" conflicts resolve "$id" --db "$db" --keep store >/dev/null || fail "resolve --keep store"
[ "$(store_cost TSH-BLK-M)" = 31 ] || fail "store cost after keep store: $(store_cost TSH-BLK-M)"
[ "$(qfield TSH-BLK-M buying_price)" = 31 ] || fail "Qoyod cost after keep store: $(qfield TSH-BLK-M buying_price)"
rc=0
"$build/tarheel" conflicts resolve "$id" --db "$db" 2>"$tmp/again.err" || rc=$?
[ "$rc" = 1 ] || fail "resolving twice should exit 1, got $rc"
grep -q "resolved already" "$tmp/again.err" || fail "no reason given: $(cat "$tmp/again.err")"
[ "$("$build/tarheel" conflicts --db "$db" --json | jq .count)" = 0 ] || fail "no open conflict should remain"

# 5. Nothing left to do: no write either way.
"$build/tarheel" fields sync --db "$db" --store $S --json >"$tmp/pass3.json" || fail "third pass"
jq -e '.to_store == 0 and .to_qoyod == 0 and .conflicts == 0' "$tmp/pass3.json" >/dev/null ||
  fail "the last pass wrote: $(cat "$tmp/pass3.json")"
puts=$(curl -sf "$url_salla/_sim/requests?since=0" | jq '[.requests[] | select(.method == "PUT")] | length')
echo "ok: fields both ways (first sight, a change, a conflict kept the store's way; $puts store writes in all)"
