#!/usr/bin/env bash
# Tenants as README.md shows them, with the CLI and curl against `tarheel
# serve`: two tenants, a store each (`connect salla --tenant`), a token each
# (`token add`, printed once, only its digest stored) and a dashboard user;
# serve started with no operator token answers tenants' tokens; each sees
# only its own store, the other's is 404 and stays as it was; a token
# revoked while serve runs is refused at once; the token never shows in
# serve's log, `token list` or the database.
set -euo pipefail
build=$1
. "$(dirname "$0")/lib.sh"

start qoyod --api-key demo-key
db="$tmp/t.db"
th() { "$build/tarheel" "$@" --db "$db"; }

th tenant add acme >"$tmp/tenant.out" 2>&1 || fail "tenant add acme"
th tenant add beta >>"$tmp/tenant.out" 2>&1 || fail "tenant add beta"
rc=0; th tenant add acme >"$tmp/dup.out" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "exists already" "$tmp/dup.out" || fail "a second acme: exit $rc $(cat "$tmp/dup.out")"

connect() { # connect STORE TENANT
  th connect salla --store "$1" --access-token "secret-access-$1" --webhook-secret "whsec-$1" \
    --qoyod-key demo-key --qoyod-url "$url_qoyod/2.0" --name "Shop $2" --tenant "$2"
}
connect 111 acme >"$tmp/c1.out" 2>&1 || fail "connect 111 --tenant acme"
connect 222 beta >"$tmp/c2.out" 2>&1 || fail "connect 222 --tenant beta"
rc=0; connect 333 nobody >"$tmp/c3.out" 2>&1 || rc=$?
[ "$rc" = 3 ] && grep -q "no tenant named 'nobody'" "$tmp/c3.out" || fail "unknown tenant: exit $rc"

th token add --tenant acme --label ci >"$tmp/tokens-acme" 2>"$tmp/tokadd.out" || fail "token add acme"
th token add --tenant beta >"$tmp/tokens-beta" 2>>"$tmp/tokadd.out" || fail "token add beta"
A=$(cat "$tmp/tokens-acme"); B=$(cat "$tmp/tokens-beta")
[[ "$A" =~ ^tht_[0-9a-f]{64}$ ]] || fail "token shape: $A"
grep -q "shown once" "$tmp/tokadd.out" || fail "token add does not say it is shown once"
th token list >"$tmp/toklist.out" 2>&1 || fail "token list"
grep -q "acme .* ci" "$tmp/toklist.out" || fail "token list: $(cat "$tmp/toklist.out")"
th tenant list --json >"$tmp/tenants.json" 2>&1 || fail "tenant list"
jq -e '[.tenants[] | {name, connections, tokens}] == [{"name":"default","connections":0,"tokens":0},
       {"name":"acme","connections":1,"tokens":1},{"name":"beta","connections":1,"tokens":1}]' \
  "$tmp/tenants.json" >/dev/null || fail "tenant list: $(cat "$tmp/tenants.json")"
printf '%s\n' 'sara-password-123' | th user add sara --tenant acme >"$tmp/user.out" 2>&1 ||
  fail "user add --tenant"
grep -q "user sara (tenant acme)" "$tmp/user.out" || fail "user add: $(cat "$tmp/user.out")"

p=$(port)
TARHEEL_API_TOKEN= "$build/tarheel" serve --db "$db" --listen "127.0.0.1:$p" --workers 0 \
  --poll-interval 0 >"$tmp/serve.out" 2>&1 &
pids+=($!)
wait_for "listening on" "$tmp/serve.out"
grep -q "no operator token; 2 of tenants" "$tmp/serve.out" || fail "serve's API line"
API="http://127.0.0.1:$p/api/v1"

curl -sf -H "Authorization: Bearer $A" "$API/connections" >"$tmp/a.json" || fail "acme GET connections"
jq -e '[.connections[].store_id] == [111]' "$tmp/a.json" >/dev/null || fail "acme sees: $(cat "$tmp/a.json")"
curl -sf -H "Authorization: Bearer $B" "$API/connections" >"$tmp/b.json" || fail "beta GET connections"
jq -e '[.connections[].store_id] == [222]' "$tmp/b.json" >/dev/null || fail "beta sees: $(cat "$tmp/b.json")"
st=$(curl -s -o "$tmp/x.json" -w '%{http_code}' -H "Authorization: Bearer $A" "$API/connections/salla:222")
[ "$st" = 404 ] || fail "acme GET beta's store: $st"
st=$(curl -s -o "$tmp/x.json" -w '%{http_code}' -H "Authorization: Bearer $A" -X PATCH \
  "$API/connections/salla:222/settings" -d '{"trigger":"completed"}')
[ "$st" = 404 ] || fail "acme PATCH beta's settings: $st"
th settings --store 222 >"$tmp/s222.out" 2>&1 || fail "settings 222"
grep -q "trigger *new" "$tmp/s222.out" || fail "beta's settings changed: $(cat "$tmp/s222.out")"
curl -sf -H "Authorization: Bearer $A" -X PATCH "$API/connections/salla:111/settings" \
  -d '{"trigger":"completed"}' >/dev/null || fail "acme PATCH its own settings"

# the dashboard user of acme: its tenant, its store
curl -sf -c "$tmp/jar" -H 'Content-Type: application/json' "$API/login" \
  -d '{"user":"sara","password":"sara-password-123"}' >/dev/null || fail "login"
curl -sf -b "$tmp/jar" "$API/session" >"$tmp/session.json" || fail "GET session"
jq -e '.user == "sara" and .tenant == "acme"' "$tmp/session.json" >/dev/null ||
  fail "session: $(cat "$tmp/session.json")"
curl -sf -b "$tmp/jar" "$API/connections" >"$tmp/sara.json" || fail "sara GET connections"
jq -e '[.connections[].store_id] == [111]' "$tmp/sara.json" >/dev/null || fail "sara sees: $(cat "$tmp/sara.json")"

# revoked while serve runs: refused at once; beta's still works
id=$(th token list --tenant acme --json | jq '.tokens[0].id')
th token revoke "$id" >"$tmp/revoke.out" 2>&1 || fail "token revoke"
st=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $A" "$API/connections")
[ "$st" = 401 ] || fail "revoked token: $st"
curl -sf -H "Authorization: Bearer $B" "$API/connections" >/dev/null || fail "beta after acme's revoke"

# the operator moves beta's store to acme: the CLI says so, acme's user sees it
connect 222 acme >"$tmp/move.out" 2>&1 || fail "move 222"
grep -q "moving salla store 222 from tenant beta to tenant acme" "$tmp/move.out" || fail "move: $(cat "$tmp/move.out")"
curl -sf -b "$tmp/jar" "$API/connections" >"$tmp/sara2.json" || fail "sara GET connections after the move"
jq -e '[.connections[].store_id] == [111, 222]' "$tmp/sara2.json" >/dev/null || fail "after the move: $(cat "$tmp/sara2.json")"

# the operator lists the users and removes sara while serve runs: her
# session ends at its next request, and she can no longer log in
th user list --tenant acme --json >"$tmp/users.json" || fail "user list"
jq -e '[.users[] | .name + "/" + .tenant] == ["sara/acme"]' "$tmp/users.json" >/dev/null ||
  fail "user list --tenant acme: $(cat "$tmp/users.json")"
th user remove sara >"$tmp/remove.out" 2>&1 || fail "user remove: $(cat "$tmp/remove.out")"
st=$(curl -s -o "$tmp/gone.json" -w '%{http_code}' -b "$tmp/jar" "$API/connections")
[ "$st" = 401 ] || fail "removed user's session: $st $(cat "$tmp/gone.json")"
st=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' "$API/login" \
  -d '{"user":"sara","password":"sara-password-123"}')
[ "$st" = 401 ] || fail "removed user logs in: $st"
set +e
th user remove sara >"$tmp/remove2.out" 2>&1
rc=$?
set -e
[ "$rc" = 3 ] && grep -q "user list" "$tmp/remove2.out" || fail "removing her twice: $rc $(cat "$tmp/remove2.out")"

# the tokens are nowhere tarheel wrote but the files the test made of them
for t in "$A" "$B"; do
  if grep -rlaF "$t" "$tmp" --exclude='tokens-*' >/dev/null; then fail "a token is in $(grep -rlaF "$t" "$tmp" --exclude='tokens-*')"; fi
done
echo "ok: 2 tenants, isolation by token and session, revoke at once, move by the operator, a user removed at once"
