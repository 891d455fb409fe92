#!/usr/bin/env bash
# The dashboard in a real browser (issue 7): Debian's chromium driven by
# playwright-core (tests/browser, pinned by its package-lock.json) against
# `tarheel serve` with the Qoyod and Salla emulators. The node script logs in
# (a wrong password first), checks the CSRF refusal, connects Qoyod (a wrong
# key, then the right one and an inventory location), pulls a range of old
# orders watching the progress bar, filters, transfers selected orders and a
# whole range after its confirmation, reads a failure reason and the order's
# history, retries, changes a setting, reads the report and the activity,
# switches to English and back checking the page direction, and logs out;
# it also connects a Zid store through OAuth from the Connect page.
# Screenshots go to $tmp/shots, or to docs/screenshots with
# TARHEEL_UPDATE_SCREENSHOTS=1.
set -euo pipefail
build=$1
src=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$(dirname "$0")/lib.sh"

command -v node >/dev/null || fail "node is missing: bash scripts/deps.sh --all"
command -v npm >/dev/null || fail "npm is missing: bash scripts/deps.sh --all"
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || fail "$CHROMIUM is missing: bash scripts/deps.sh --all"

# playwright-core from the lock file, in the temp dir (the source tree stays
# clean); npm's cache makes this offline after the first run.
mkdir -p "$tmp/browser"
cp "$src/tests/browser/package.json" "$src/tests/browser/package-lock.json" "$tmp/browser/"
(cd "$tmp/browser" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >"$tmp/npm.out" 2>&1) ||
  fail "npm ci (playwright-core) failed: $(tail -5 "$tmp/npm.out")"

start qoyod --api-key demo-key
start salla --rate-limit-plan off
start zid
ZSTORE=251073
curl -sf "$url_zid/_sim/zid/stores" -d "{\"id\":$ZSTORE}" >/dev/null || fail "zid store"
STORE=1305146709
T=$(curl -sf "$url_salla/_sim/salla/install" -d "{\"store_id\":$STORE}" | jq -r .access_token)
COUNT=20
curl -sf "$url_salla/_sim/salla/generate" \
  -d "{\"store_id\":$STORE,\"count\":$COUNT,\"from\":\"2024-01-01\",\"to\":\"2024-01-31\"}" >/dev/null ||
  fail "generate"
db="$tmp/t.db"
TH="$build/tarheel"
"$TH" connect salla --db "$db" --store $STORE --access-token "$T" --webhook-secret whsec \
  --qoyod-key demo-key --qoyod-url "$url_qoyod/2.0" --api-base "$url_salla/admin/v2" \
  >"$tmp/connect.out" 2>&1 || fail "connect salla"
PASS=browser-test-password
echo "$PASS" | "$TH" user add admin --db "$db" >"$tmp/user.out" 2>&1 || fail "user add"

P=$(port)
"$TH" serve --db "$db" --listen "127.0.0.1:$P" --qoyod-url "$url_qoyod/2.0" --poll-interval 0 \
  --retry-base-ms 1 --public-url "http://127.0.0.1:$P" --zid-client-id demo-client \
  --zid-client-secret demo-secret --zid-oauth-url "$url_zid" --zid-api "$url_zid/v1" \
  >"$tmp/serve.out" 2>&1 &
pids+=($!)
wait_for "listening on" "$tmp/serve.out"

# a forged or stale OAuth callback is refused, back to the dashboard saying so
loc=$(curl -s -o /dev/null -w '%{redirect_url}' "http://127.0.0.1:$P/oauth/zid/callback?code=x&state=0123")
case "$loc" in */#/connect/failed/*) ;; *) fail "a stale callback went to '$loc'" ;; esac

shots="$tmp/shots"
[ "${TARHEEL_UPDATE_SCREENSHOTS:-0}" = 1 ] && shots="$src/docs/screenshots"
TARHEEL_URL="http://127.0.0.1:$P" DASH_USER=admin DASH_PASSWORD=$PASS QOYOD_KEY=demo-key \
  PULL_FROM=2024-01-01 PULL_TO=2024-01-31 PULL_COUNT=$COUNT SHOTS="$shots" CHROMIUM="$CHROMIUM" \
  ZID_STORE=$ZSTORE \
  NODE_PATH="$tmp/browser/node_modules" \
  node "$src/tests/browser/dashboard.test.js" >"$tmp/browser.out" 2>&1 || {
  [ "${TARHEEL_KEEP_FAILED:-}" ] && cp "$shots/FAILED.png" "$TARHEEL_KEEP_FAILED" 2>/dev/null
  fail "the browser test failed: $(grep -A4 '^not ok' "$tmp/browser.out")"
}
cat "$tmp/browser.out"
grep -q "^all [0-9]* steps passed" "$tmp/browser.out" || fail "the browser test did not finish"
# the Zid store connected from the browser has its webhooks registered with tarheel
curl -sf "$url_zid/_sim/requests" | jq -e '[(.requests // .)[] | select(.method == "POST" and
  (.path | test("webhooks")) and .status < 300)] | length >= 1' >/dev/null ||
  fail "connecting Zid from the dashboard registered no webhook"
"$TH" settings --db "$db" --store $ZSTORE --platform zid >"$tmp/zid.out" 2>&1 ||
  fail "the Zid store connected from the browser is not saved: $(cat "$tmp/zid.out")"
