#!/usr/bin/env bash
# `tarheel connect salla` as a merchant runs it, against the emulators:
# custom mode (--oauth: open the printed link, Salla redirects back, tokens
# are traded and saved), a forged redirect refused, and Easy Mode (--wait
# while the app is installed and `tarheel serve` receives the tokens).
set -euo pipefail
build=$1
. "$(dirname "$0")/lib.sh"

TP=$(port)
start qoyod --api-key demo-key
start salla --webhook-url "http://127.0.0.1:$TP/webhooks/salla" --webhook-secret whsec --webhook-retry-ms 200
curl -sf "$url_salla/_sim/salla/stores" -d '{"id":777,"name":"متجر الاختبار"}' >/dev/null
db="$tmp/t.db"
common=(--db "$db" --webhook-secret whsec --qoyod-key demo-key --qoyod-url "$url_qoyod/2.0"
        --api-base "$url_salla/admin/v2")

# --- custom mode: the printed link, followed as a browser would
CP=$(port)
"$build/tarheel" connect salla --oauth --client-id demo-client --client-secret demo-secret \
  --salla-accounts-url "$url_salla" --redirect-uri "http://127.0.0.1:$CP/callback" --timeout 20 \
  "${common[@]}" --trigger completed >"$tmp/oauth.out" 2>&1 &
cpid=$!
wait_for "oauth2/auth?client_id=demo-client" "$tmp/oauth.out"
link=$(grep -o "http[^ ]*oauth2/auth?[^ ]*" "$tmp/oauth.out")
curl -sfL "$link" -o "$tmp/page.html" || fail "the redirect failed"
grep -q "tarheel" "$tmp/page.html" || fail "the callback page did not answer"
wait "$cpid" || fail "connect --oauth exited non-zero"
grep -q "Authorized by store 777" "$tmp/oauth.out" || fail "store id not learnt"
rt=$(sqlite3 "$db" "select refresh_token from connections where store_id = 777")
[ -n "$rt" ] || fail "the refresh token was not saved"
trig=$(sqlite3 "$db" "select trigger_status from connections where store_id = 777")
"$build/tarheel" settings --db "$db" --store 777 | grep -q "completed" || fail "settings not applied (trigger $trig)"

# --- a redirect whose state is not ours is refused
CP=$(port)
"$build/tarheel" connect salla --oauth --client-id demo-client --client-secret demo-secret \
  --salla-accounts-url "$url_salla" --redirect-uri "http://127.0.0.1:$CP/callback" --timeout 20 \
  "${common[@]}" >"$tmp/forged.out" 2>&1 &
cpid=$!
wait_for "oauth2/auth" "$tmp/forged.out"
curl -sf "http://127.0.0.1:$CP/callback?code=stolen&state=0000" >/dev/null || true
if wait "$cpid"; then fail "a forged redirect was accepted"; fi
grep -q "state does not match" "$tmp/forged.out" || fail "no plain reason for the forged redirect"

# --- Easy Mode: wait while the merchant installs the app
"$build/tarheel" serve --db "$db" --listen "127.0.0.1:$TP" --workers 0 \
  --salla-webhook-secret whsec --salla-api "$url_salla/admin/v2" >"$tmp/serve.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$TP/healthz" >/dev/null && break; sleep 0.05; done
"$build/tarheel" connect salla --wait --store 888 --timeout 20 --db "$db" --qoyod-key demo-key \
  --qoyod-url "$url_qoyod/2.0" >"$tmp/wait.out" 2>&1 &
wpid=$!
wait_for "Waiting up to" "$tmp/wait.out"
curl -sf "$url_salla/_sim/salla/install" -d '{"store_id":888}' >/dev/null
wait "$wpid" || fail "connect --wait exited non-zero"
grep -q "Installed in store 888" "$tmp/wait.out" || fail "the install was not seen"
# (the key is sealed at rest: the database holds no clear copy to compare)
[ "$(sqlite3 "$db" "select qoyod_api_key from connections where store_id = 888" | cut -c1-5)" = enc1: ] ||
  fail "the Qoyod key is not sealed at rest"
"$build/tarheel" settings --db "$db" --store 888 | grep -q "qoyod-key *\*\*\*\*-key" ||
  fail "the Qoyod key was not applied to the Easy Mode connection"
echo "ok: connect salla (oauth, forged state, easy mode)"
