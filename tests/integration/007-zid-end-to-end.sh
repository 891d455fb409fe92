#!/usr/bin/env bash
# A Zid store end to end, as a merchant connects it: `tarheel connect zid
# --oauth` (link, callback, two tokens, profile, webhooks registered with a
# Basic credential and a per-store URL token), orders placed in Zid reach
# tarheel by webhook and become exactly one Qoyod invoice each; a delivery
# to the wrong URL token or with the wrong credential is refused; an app
# uninstall event on the app's own URL disconnects the store.
set -euo pipefail
build=$1
. "$(dirname "$0")/lib.sh"

TP=$(port)
start qoyod --api-key demo-key
start zid --webhook-retry-ms 200 --rate-limit 0 --app-webhook-url "http://127.0.0.1:$TP/webhooks/zid/app-token-0123456789"
curl -sf "$url_zid/_sim/zid/stores" -d '{"id":251073}' >/dev/null
db="$tmp/t.db"
"$build/tarheel" serve --db "$db" --listen "127.0.0.1:$TP" --retry-base-ms 100 \
  --zid-app-token app-token-0123456789 --zid-api "$url_zid/v1" \
  --zid-client-id demo-client --zid-client-secret demo-secret --zid-token-url "$url_zid/oauth/token" \
  --qoyod-url "$url_qoyod/2.0" --qoyod-key demo-key >"$tmp/serve.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$TP/healthz" >/dev/null && break; sleep 0.05; done

CP=$(port)
"$build/tarheel" connect zid --oauth --client-id demo-client --client-secret demo-secret \
  --zid-oauth-url "$url_zid" --api-base "$url_zid/v1" --redirect-uri "http://127.0.0.1:$CP/cb" \
  --public-url "http://127.0.0.1:$TP" --timeout 20 --db "$db" --qoyod-key demo-key \
  --qoyod-url "$url_qoyod/2.0" >"$tmp/connect.out" 2>&1 &
cpid=$!
wait_for "oauth/authorize?client_id=demo-client" "$tmp/connect.out"
link=$(grep -o "http[^ ]*oauth/authorize?[^ ]*" "$tmp/connect.out")
curl -sfL "$link" -o "$tmp/page.html" || fail "the redirect failed"
wait "$cpid" || fail "connect zid exited non-zero"
grep -q "Authorized by store 251073" "$tmp/connect.out" || fail "store id not learnt"
grep -q "Webhooks registered" "$tmp/connect.out" || fail "webhooks not registered"
subs=$(curl -sf "$url_zid/_sim/zid/webhooks")
[ "$(echo "$subs" | jq '[.webhooks[] | select(.username == "tarheel")] | length')" = 2 ] \
  || fail "expected 2 subscriptions with Basic credentials: $subs"

# orders placed in Zid arrive by webhook and become one invoice each
ids=$(curl -sf "$url_zid/_sim/zid/generate" -d '{"store_id":251073,"count":6}' | jq -r '.orders[]')
for _ in $(seq 200); do
  n=$("$build/tarheel" orders list --db "$db" --platform zid 2>/dev/null | grep -c ' transferred ' || true)
  [ "$n" = 6 ] && break
  sleep 0.1
done
"$build/tarheel" orders list --db "$db" >"$tmp/orders.out" 2>&1 || true
[ "$(grep -c ' transferred ' "$tmp/orders.out")" = 6 ] || fail "6 orders should be transferred"
for id in $ids; do
  got=$(curl -sf -H 'API-KEY: demo-key' -G "$url_qoyod/2.0/invoices" --data-urlencode "q[reference_eq]=$id" |
    jq '.invoices | length')
  [ "$got" = 1 ] || fail "order $id has $got invoices"
done

# the order's history, as `orders show` prints it
first=$(sed -n 1p <<<"$ids")
"$build/tarheel" orders show "$first" --db "$db" >"$tmp/show.out" 2>&1 || fail "orders show"
grep -q "history (Riyadh time)" "$tmp/show.out" || fail "orders show prints no history"
grep -qE "^    20[0-9-]+ [0-9:]+  transferring" "$tmp/show.out" || fail "history lacks 'transferring'"
grep -qE "^    20[0-9-]+ [0-9:]+  transferred" "$tmp/show.out" || fail "history lacks 'transferred'"

# a status change: a webhook, no second invoice
first=$(sed -n 1p <<<"$ids")
curl -sf "$url_zid/_sim/zid/orders/$first/status" -d '{"status":"delivered"}' >/dev/null
sleep 1
got=$(curl -sf -H 'API-KEY: demo-key' -G "$url_qoyod/2.0/invoices" --data-urlencode "q[reference_eq]=$first" | jq '.invoices | length')
[ "$got" = 1 ] || fail "a status change made $got invoices"

# forged deliveries
body=$(curl -sf "$url_zid/_sim/zid/orders" | jq -c '.orders[0]')
# The Basic credential tarheel registered, as Zid holds it (tarheel's copy is
# sealed at rest).
secret=$(echo "$subs" | jq -r '.webhooks[0] | "\(.username):\(.password)"')
token=$(grep -o '/webhooks/zid/[0-9a-f]*' "$tmp/zid.out" | sed -n 1p || true)
code=$(curl -s -o /dev/null -w '%{http_code}' -u "$secret" -H 'Content-Type: application/json' \
  "http://127.0.0.1:$TP/webhooks/zid/00000000000000000000000000000000" -d "$body")
[ "$code" = 401 ] || fail "a wrong URL token should be 401, got $code"
url=$(echo "$subs" | jq -r '.webhooks[0].target_url')
code=$(curl -s -o /dev/null -w '%{http_code}' -u "tarheel:wrong" -H 'Content-Type: application/json' "$url" -d "$body")
[ "$code" = 401 ] || fail "a wrong Basic credential should be 401, got $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -u "$secret" -H 'Content-Type: application/json' "$url" -d "$body")
[ "$code" = 200 ] || fail "the registered URL and credential should be 200, got $code"

# the app is uninstalled: Zid tells the app's own URL; the store is disconnected
curl -sf "$url_zid/_sim/zid/uninstall" -d '{"store_id":251073}' >/dev/null
for _ in $(seq 100); do
  st=$(sqlite3 "$db" "select status from connections where store_id = 251073")
  [ "$st" = disconnected ] && break
  sleep 0.05
done
[ "$st" = disconnected ] || fail "uninstall did not disconnect the store (status $st)"
echo "ok: zid end to end"
