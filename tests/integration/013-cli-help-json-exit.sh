#!/usr/bin/env bash
# The command line for people and for scripts (issue 7): every command
# answers --help with its options, examples and the exit codes; the man page
# docs/tarheel.1 is exactly what `tarheel help --man` prints (one table in
# src/cli/cli.c makes both); --json output parses and carries the facts; the
# exit codes say what happened (2 usage, 3 not found, 4 credential refused,
# 5 try again later).
set -euo pipefail
build=$1
src=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$(dirname "$0")/lib.sh"
TH="$build/tarheel"

# exit CODE CMD...: runs CMD, which must exit with CODE.
want_exit() {
  local want=$1 rc=0
  shift
  "$@" >"$tmp/last.out" 2>&1 || rc=$?
  [ "$rc" = "$want" ] || fail "$* exited $rc, want $want: $(head -5 "$tmp/last.out")"
}

# --- the man page is generated, and renders without warnings
diff -u "$src/docs/tarheel.1" <("$TH" help --man) >"$tmp/man.diff" ||
  fail "docs/tarheel.1 is stale: build/tarheel help --man > docs/tarheel.1 ($(head -20 "$tmp/man.diff"))"
if command -v groff >/dev/null; then
  groff -man -ww -z "$src/docs/tarheel.1" 2>"$tmp/groff.out" || fail "groff failed"
  [ ! -s "$tmp/groff.out" ] || fail "groff warns: $(cat "$tmp/groff.out")"
fi

# --- every command has --help with examples and the exit codes
want_exit 0 "$TH" --help
cmds=$("$TH" --help | sed -n 's/^  \([a-z]\+\( [a-z]\+\)\?\)  .*/\1/p' | sed 's/ *$//')
[ "$(wc -l <<<"$cmds")" -ge 14 ] || fail "tarheel --help lists too few commands: $cmds"
while read -r c; do
  # shellcheck disable=SC2086
  "$TH" $c --help >"$tmp/help.out" 2>&1 || fail "tarheel $c --help failed"
  grep -q "^usage: tarheel $c" "$tmp/help.out" || fail "tarheel $c --help has no usage line"
  grep -q "^Examples:" "$tmp/help.out" || fail "tarheel $c --help has no examples"
  grep -q "^Exit status: 0 done" "$tmp/help.out" || fail "tarheel $c --help has no exit codes"
  # shellcheck disable=SC2086
  "$TH" help $c | cmp -s - "$tmp/help.out" || fail "tarheel help $c differs from $c --help"
  grep -q "^\.SS \"tarheel $c\"" "$src/docs/tarheel.1" || fail "the man page lacks $c"
done <<<"$cmds"
want_exit 0 "$TH" orders --help
grep -q "tarheel orders pull" "$tmp/last.out" || fail "orders --help does not list pull"
want_exit 2 "$TH" orders
want_exit 2 "$TH" frobnicate
want_exit 2 "$TH" orders list --status shipped
want_exit 2 "$TH" help nothing

# --- Qoyod: --json, a refused key (4), an unreachable Qoyod (5)
start qoyod --api-key demo-key
start salla --rate-limit-plan off
"$TH" connect qoyod --api-key demo-key --qoyod-url "$url_qoyod/2.0" --json >"$tmp/inv.json" ||
  fail "connect qoyod --json"
jq -e '.ok == true and (.inventories | length) >= 1 and (.inventories[0].id | type) == "number"' \
  "$tmp/inv.json" >/dev/null || fail "connect qoyod --json: $(cat "$tmp/inv.json")"
want_exit 4 "$TH" connect qoyod --api-key wrong-key --qoyod-url "$url_qoyod/2.0"
grep -q "what to do" "$tmp/last.out" || fail "a refused key does not say what to do"
want_exit 5 "$TH" connect qoyod --api-key demo-key --qoyod-url "http://127.0.0.1:$(port)/2.0"

# --- a store: settings --json; not found (3)
db="$tmp/t.db"
STORE=1305146709
T=$(curl -sf "$url_salla/_sim/salla/install" -d "{\"store_id\":$STORE}" | jq -r .access_token)
"$TH" connect salla --db "$db" --store $STORE --access-token "$T" --webhook-secret whsec \
  --qoyod-key demo-key --qoyod-url "$url_qoyod/2.0" --api-base "$url_salla/admin/v2" \
  >"$tmp/connect.out" 2>&1 || fail "connect salla"
"$TH" settings --db "$db" --store $STORE --trigger completed --json >"$tmp/settings.json" ||
  fail "settings --json"
jq -e ".store_id == $STORE and .platform == \"salla\" and .settings.trigger == \"completed\" and
  .settings.financial_invoice == true" "$tmp/settings.json" >/dev/null ||
  fail "settings --json: $(cat "$tmp/settings.json")"
want_exit 3 "$TH" settings --db "$db" --store 42
want_exit 3 "$TH" report --db "$db" --store 42
want_exit 3 "$TH" orders show 999 --db "$db"
want_exit 2 "$TH" settings --db "$db" --store $STORE --trigger shipped

# --- reference prefixes (docs/SETTINGS.md): none for the first store on a
# Qoyod account, S<id> for a second store on it; the merchant's own, unique
# on the account (exit 1 when taken), its form checked (exit 2)
jq -e '.settings.reference_prefix == ""' "$tmp/settings.json" >/dev/null ||
  fail "the first store has a prefix: $(cat "$tmp/settings.json")"
S2=1305146710
T2=$(curl -sf "$url_salla/_sim/salla/install" -d "{\"store_id\":$S2}" | jq -r .access_token)
"$TH" connect salla --db "$db" --store $S2 --access-token "$T2" --webhook-secret whsec \
  --qoyod-key demo-key --qoyod-url "$url_qoyod/2.0" --api-base "$url_salla/admin/v2" \
  >"$tmp/connect2.out" 2>&1 || fail "connect salla $S2"
"$TH" settings --db "$db" --store $S2 --json >"$tmp/s2.json" || fail "settings $S2"
jq -e '.settings.reference_prefix == "S\(.connection)"' "$tmp/s2.json" >/dev/null ||
  fail "the second store on the account has no prefix: $(cat "$tmp/s2.json")"
"$TH" settings --db "$db" --store $S2 --reference-prefix shop2 --json >"$tmp/s2.json" ||
  fail "settings --reference-prefix"
jq -e '.settings.reference_prefix == "SHOP2"' "$tmp/s2.json" >/dev/null || fail "$(cat "$tmp/s2.json")"
"$TH" settings --db "$db" --store $S2 | grep -q "reference-prefix *SHOP2" || fail "settings text"
want_exit 1 "$TH" settings --db "$db" --store $STORE --reference-prefix shop2
grep -q "already uses the reference prefix" "$tmp/last.out" || fail "$(cat "$tmp/last.out")"
want_exit 2 "$TH" settings --db "$db" --store $S2 --reference-prefix cn

# --- orders: --json lists and shows with history
"$TH" orders list --db "$db" --json >"$tmp/none.json"
jq -e '.count == 0 and .orders == []' "$tmp/none.json" >/dev/null || fail "empty list: $(cat "$tmp/none.json")"
id=$(curl -sf "$url_salla/_sim/salla/generate" -d "{\"store_id\":$STORE,\"count\":1}" | jq '.orders[0]')
"$TH" orders transfer "$id" --db "$db" --store $STORE >"$tmp/transfer.out" 2>&1 ||
  fail "orders transfer: $(cat "$tmp/transfer.out")"
"$TH" orders list --db "$db" --json >"$tmp/list.json"
jq -e ".count == 1 and .orders[0].order_id == $id and .orders[0].state == \"transferred\" and
  (.orders[0].total.halalas | type) == \"number\" and .orders[0].qoyod.invoice_id > 0" \
  "$tmp/list.json" >/dev/null || fail "orders list --json: $(cat "$tmp/list.json")"
"$TH" orders show "$id" --db "$db" --json >"$tmp/show.json"
jq -e ".order_id == $id and (.history | length) >= 2 and
  ([.history[].what] | index(\"transferred\")) != null" "$tmp/show.json" >/dev/null ||
  fail "orders show --json: $(cat "$tmp/show.json")"
# once an order was sent, the store's prefix stays
want_exit 1 "$TH" settings --db "$db" --store $STORE --reference-prefix one
grep -q "already sent to Qoyod" "$tmp/last.out" || fail "$(cat "$tmp/last.out")"

# --- errors --json is the error table
n=$("$TH" errors --json | jq length)
m=$("$TH" errors --markdown | grep -cE '^\| -?[0-9]')
[ "$n" = "$m" ] || fail "errors --json has $n codes, the table $m"
echo "CLI: --help for every command, man page current, --json parses, exit codes 0/2/3/4/5 as documented"
