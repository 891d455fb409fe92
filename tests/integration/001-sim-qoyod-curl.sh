#!/usr/bin/env bash
# A new user's first steps with the Qoyod emulator, as README and sim/README
# describe them: start the binary, create a customer, a product and an
# invoice with curl, see stock go down, lose an answer with a fault and find
# the invoice by its reference, restart from --state and still see it.
set -euo pipefail
build=$1
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

start() {
  "$build/tarheel-sim" qoyod --listen 127.0.0.1:0 --api-key k1 --state "$tmp/q.json" >"$tmp/out" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$tmp/out")
    [ -n "$url" ] && return 0
    sleep 0.05
  done
  cat "$tmp/out" >&2; fail "emulator did not start"
}
start
q() { curl -s -H 'API-KEY: k1' -H 'Content-Type: application/json' "$@"; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

[ "$(code "$url/2.0/inventories")" = 401 ] || fail "no API key should be 401"
[ "$(code -H 'API-KEY: nope' "$url/2.0/inventories")" = 401 ] || fail "wrong API key should be 401"

cust=$(q "$url/2.0/customers" -d '{"contact":{"name":"Ahmed Ali","phone_number":"0500000000"}}')
cid=$(echo "$cust" | sed -n 's/.*"contact":{"id":\([0-9]*\).*/\1/p')
[ -n "$cid" ] || cid=$(echo "$cust" | grep -o '"id":[0-9]*' | sed -n 1p | cut -d: -f2)
[ -n "$cid" ] || fail "customer not created: $cust"

prod=$(q "$url/2.0/products" -d '{"product":{"sku":"SKU-1","name_ar":"قميص","name_en":"Shirt","type":"Product","product_unit_type_id":6,"category_id":1,"tax_id":1,"track_quantity":"1","sale_item":"1","selling_price":"100.0","sales_account_id":17,"purchase_item":"1","buying_price":"60.0","expense_account_id":12}}')
pid_q=$(echo "$prod" | grep -o '"id":[0-9]*' | sed -n 1p | cut -d: -f2)
[ -n "$pid_q" ] || fail "product not created: $prod"
adj=$(code -H 'API-KEY: k1' -H 'Content-Type: application/json' "$url/2.0/inventory_adjustments" \
  -d "{\"inventory_adjustment\":{\"inventory_id\":1,\"revenue_account_id\":18,\"expense_account_id\":12,\"date\":\"2026-01-15\",\"line_items\":[{\"product_id\":$pid_q,\"actual_quantity\":10,\"rate\":60}]}}")
case "$adj" in 200|201) ;; *) fail "inventory adjustment answered $adj";; esac

inv='{"invoice":{"contact_id":'$cid',"reference":"SALLA-1001","issue_date":"2026-01-15","due_date":"2026-01-15","status":"Approved","inventory_id":1,"line_items":[{"product_id":'$pid_q',"quantity":2,"unit_price":100,"tax_percent":15}]}}'
out=$(q "$url/2.0/invoices" -d "$inv")
echo "$out" | grep -q '"total":"230.0"' || fail "invoice total should be \"230.0\": $out"
[ "$(code -H 'API-KEY: k1' -H 'Content-Type: application/json' "$url/2.0/invoices" -d "$inv")" = 422 ] \
  || fail "a duplicate reference should be refused with 422"
q "$url/2.0/products/$pid_q" | grep -q '"stock":"8.0"' || fail "stock should be 8.0 after selling 2"

# A lost answer: the invoice is created but curl gets nothing back.
curl -s "$url/_sim/faults" -d '{"match":"POST /2.0/invoices","mode":"commit_then_drop","count":1}' >/dev/null
inv2=${inv/SALLA-1001/SALLA-1002}
if q "$url/2.0/invoices" -d "$inv2" >/dev/null 2>&1; then fail "the answer should have been lost"; fi
q -G "$url/2.0/invoices" --data-urlencode 'q[reference_eq]=SALLA-1002' | grep -q '"reference":"SALLA-1002"' \
  || fail "the invoice whose answer was lost should exist"

# Restart from the state file: data survives.
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
start
q -G "$url/2.0/invoices" --data-urlencode 'q[reference_eq]=SALLA-1001' | grep -q '"reference":"SALLA-1001"' \
  || fail "state did not survive a restart"
echo "ok: qoyod emulator via curl"
