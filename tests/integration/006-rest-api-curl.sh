#!/usr/bin/env bash
# The REST API as README.md shows it, with curl against `tarheel serve`: off
# (403 saying how to turn it on) without a token; tokens from
# --api-token-file and $TARHEEL_API_TOKEN; connections without secrets;
# settings changed through the API seen by the CLI (and the CLI refusing what
# the API refuses); orders queued by hand land in the jobs table.
set -euo pipefail
build=$1
. "$(dirname "$0")/lib.sh"

"$build/tarheel-sim" qoyod --listen 127.0.0.1:0 --api-key demo-key >"$tmp/qoyod.out" 2>&1 &
pids+=($!)
wait_for "listening on" "$tmp/qoyod.out"
url_qoyod=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$tmp/qoyod.out")
db="$tmp/t.db"
"$build/tarheel" connect salla --db "$db" --store 1305146709 --access-token secret-access-T \
  --webhook-secret secret-whsec --qoyod-key demo-key --qoyod-url "$url_qoyod/2.0" \
  >"$tmp/connect.out" 2>&1 || fail "connect"

serve() { # serve NAME ARGS...: tarheel serve on a free port; sets API
  local name=$1; shift
  local p; p=$(port)
  "$build/tarheel" serve --db "$db" --listen "127.0.0.1:$p" --workers 0 "$@" >"$tmp/$name.out" 2>&1 &
  pids+=($!)
  wait_for "listening on" "$tmp/$name.out"
  API="http://127.0.0.1:$p/api/v1"
}

# --- no token configured: 403, and the answer says how to configure one
TARHEEL_API_TOKEN= serve off
st=$(curl -s -o "$tmp/off.json" -w '%{http_code}' "$API/connections")
[ "$st" = 403 ] || fail "no token: want 403, got $st"
jq -e '.error.code == "TH_ECONFIG" and (.error.remedy | contains("--api-token-file"))' \
  "$tmp/off.json" >/dev/null || fail "403 without the remedy: $(cat "$tmp/off.json")"
grep -q "REST API off" "$tmp/off.out" || fail "serve did not say the API is off"
kill "${pids[-1]}"

# --- the README's way: a token file, plus one from the environment
openssl rand -hex 32 >"$tmp/tokens"
TOKEN=$(cat "$tmp/tokens")
TARHEEL_API_TOKEN=env-token-0123456789abcdef serve on --api-token-file "$tmp/tokens"
grep -q "REST API at http://.*/api/v1 (2 token(s))" "$tmp/on.out" || fail "serve did not count 2 tokens"
H=(-H "Authorization: Bearer $TOKEN")

curl -sf "${H[@]}" "$API/connections" >"$tmp/conns.json" || fail "GET connections"
jq -e '.connections | length == 1' "$tmp/conns.json" >/dev/null || fail "connections: $(cat "$tmp/conns.json")"
jq -e '.connections[0] | .store_id == 1305146709 and .platform == "salla" and .state == "active"
       and .credentials.access_token == true and .settings.trigger == "new"' \
  "$tmp/conns.json" >/dev/null || fail "connection fields: $(cat "$tmp/conns.json")"
for s in secret-access-T secret-whsec demo-key; do
  grep -q "$s" "$tmp/conns.json" && fail "GET connections shows the secret $s"
done
curl -sf -H "Authorization: Bearer env-token-0123456789abcdef" "$API/connections" >/dev/null ||
  fail "the TARHEEL_API_TOKEN token is refused"

st=$(curl -s -o "$tmp/401.json" -D "$tmp/401.h" -w '%{http_code}' \
  -H "Authorization: Bearer not-the-token-0123456789" "$API/connections")
[ "$st" = 401 ] || fail "wrong token: want 401, got $st"
grep -qi '^WWW-Authenticate: Bearer realm="tarheel", error="invalid_token"' "$tmp/401.h" ||
  fail "401 without WWW-Authenticate"

# --- settings: the API's change is what the CLI shows; both refuse the same values
curl -sf "${H[@]}" -X PATCH "$API/connections/salla:1305146709/settings" \
  -d '{"trigger":"ready","financial_invoice":false}' >"$tmp/patch.json" || fail "PATCH settings"
jq -e '.trigger == "ready" and .financial_invoice == false' "$tmp/patch.json" >/dev/null ||
  fail "PATCH answer: $(cat "$tmp/patch.json")"
"$build/tarheel" settings --db "$db" --store 1305146709 >"$tmp/settings.out" 2>&1 || fail "tarheel settings"
grep -q "trigger *ready" "$tmp/settings.out" || fail "the CLI does not see the API's change"
grep -q "financial-invoice *off" "$tmp/settings.out" || fail "the CLI does not see the API's change"
st=$(curl -s -o "$tmp/bad.json" -w '%{http_code}' "${H[@]}" -X PATCH \
  "$API/connections/1/settings" -d '{"trigger":"shipped"}')
[ "$st" = 400 ] || fail "bad trigger: want 400, got $st"
jq -e '.error.fields[0].field == "trigger"' "$tmp/bad.json" >/dev/null || fail "400 does not name the field"
rc=0
"$build/tarheel" settings --db "$db" --store 1305146709 --trigger shipped >"$tmp/clibad.out" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "the CLI accepted --trigger shipped (exit $rc)"
grep -q "trigger must be new, ready, in_transit or completed" "$tmp/clibad.out" ||
  fail "the CLI's message differs from the API's"

# --- transfer by hand: 202, and the job is queued for the workers
curl -sf "${H[@]}" "$API/orders/transfer" -d '{"connection":1,"orders":[2116149737]}' \
  >"$tmp/xfer.json" || fail "POST transfer"
jq -e '.count == 1 and .queued == [2116149737]' "$tmp/xfer.json" >/dev/null || fail "transfer: $(cat "$tmp/xfer.json")"
n=$(sqlite3 "$db" "select count(*) from jobs where order_id = 2116149737")
[ "$n" = 1 ] || fail "want 1 job for the order, got $n"
echo "REST API: 403 when off, tokens, connections, settings and transfer all as documented"
