#!/usr/bin/env bash
# A new user's first steps with the Salla and Zid emulators, exactly as the
# README's "Try the emulators" section shows them: start a receiver, install
# the app, receive a signed Salla webhook, list Salla orders, subscribe to a
# Zid webhook and receive it with its Basic credential, list Zid orders; and
# bad input gets the platform's documented error.
set -euo pipefail
build=$1
. "$(dirname "$0")/lib.sh"

json() { jq -r "$1"; }

start receiver --secret whsec --basic tarheel:s3cret
start salla --webhook-url "$url_receiver/salla" --webhook-secret whsec
start zid

# --- Salla: install (Easy Mode) → signed app.store.authorize arrives
tok=$(curl -s "$url_salla/_sim/salla/install" -d '{"store_id":1305146709}')
token=$(echo "$tok" | json .access_token)
wait_for 'event=app.store.authorize signature ok' "$tmp/receiver.out"
curl -s "$url_salla/_sim/salla/generate" -d '{"store_id":1305146709,"count":3}' >/dev/null
wait_for 'event=order.created signature ok' "$tmp/receiver.out"
n=$(curl -s -H "Authorization: Bearer $token" "$url_salla/admin/v2/orders" | json .pagination.total)
[ "$n" = 3 ] || fail "Salla should list 3 orders, got $n"
code=$(curl -s -o "$tmp/e.json" -w '%{http_code}' -H "Authorization: Bearer nope" "$url_salla/admin/v2/orders")
[ "$code" = 401 ] || fail "a bad Salla token should be 401, got $code"
grep -q '"success":false' "$tmp/e.json" || fail "Salla's error envelope expected: $(cat "$tmp/e.json")"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  "$url_salla/admin/v2/orders/1/status" -d '{not json')
case "$code" in 400|404) ;; *) fail "malformed JSON to Salla should be refused, got $code";; esac

# --- Zid: install, subscribe with Basic credentials, order.create arrives
tok=$(curl -s "$url_zid/_sim/zid/install" -d '{"store_id":251073}')
auth=$(echo "$tok" | json .authorization); mgr=$(echo "$tok" | json .access_token)
H=(-H "Authorization: Bearer $auth" -H "X-Manager-Token: $mgr" -H 'Accept: application/json')
out=$(curl -s "${H[@]}" -H 'Content-Type: application/json' "$url_zid/v1/managers/webhooks" \
  -d "{\"event\":\"order.create\",\"target_url\":\"$url_receiver/zid/order-create\",\"original_id\":1,\"subscriber\":\"tarheel\",\"username\":\"tarheel\",\"password\":\"s3cret\"}")
echo "$out" | grep -q '"health_status":"healthy"' || fail "Zid webhook not created: $out"
curl -s "$url_zid/_sim/zid/generate" -d '{"store_id":251073,"count":2}' >/dev/null
wait_for 'POST /zid/order-create event=- basic auth ok' "$tmp/receiver.out"
n=$(curl -s "${H[@]}" "$url_zid/v1/managers/store/orders?per_page=100" | json .total_order_count)
[ "$n" = 2 ] || fail "Zid should list 2 orders, got $n"
code=$(curl -s -o "$tmp/e.json" -w '%{http_code}' "${H[@]}" "$url_zid/v1/managers/store/orders?per_page=500")
[ "$code" = 422 ] || fail "per_page=500 should be 422, got $code"
grep -q '"per_page"' "$tmp/e.json" || fail "the 422 should name per_page: $(cat "$tmp/e.json")"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $auth" "$url_zid/v1/managers/store/orders")
[ "$code" = 401 ] || fail "Zid without X-Manager-Token should be 401, got $code"
echo "ok: salla and zid emulators via curl"
