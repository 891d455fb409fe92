#!/usr/bin/env bash
# docs/ERRORS.md must be exactly what `tarheel errors --markdown` prints, so the
# operator-facing table never drifts from src/core/err.h.
set -euo pipefail
build=$1 src=$2
if ! diff -u "$src/docs/ERRORS.md" <("$build/tarheel" errors --markdown); then
  echo "docs/ERRORS.md is stale: run build/tarheel errors --markdown > docs/ERRORS.md" >&2
  exit 1
fi
echo "docs/ERRORS.md matches src/core/err.h"

# The Arabic dashboard says what to do for every code (web/i18n.js
# todo_<CODE>); a code added to err.h without it would show English there.
missing=""
for name in $("$build/tarheel" errors --markdown | grep -o '`TH_E[A-Z]*`' | tr -d '`'); do
  grep -q "^ *todo_$name: '" "$src/web/i18n.js" || missing="$missing $name"
done
if [ -n "$missing" ]; then
  echo "web/i18n.js has no Arabic todo_<CODE> for:$missing (add it to the ar table)" >&2
  exit 1
fi
echo "web/i18n.js says what to do for every error code in Arabic"

# ...and names every event of an order's history in Arabic (web/i18n.js
# ev_<what>): the literal `what` of each store_order_note / credit_note call
# in src/ (its first string literal), and the transfer states set_state notes.
events=$(perl -0ne 'while (/\b(?:store_order_note|credit_note)\s*\(([^;]*?)\)\s*;/sg) {
    my $a = $1; print "$1\n" if $a =~ /"([a-z][a-z ]*[a-z])"/ }' \
    $(grep -rl "store_order_note\|credit_note" "$src/src" --include=*.c) | sort -u)
states=$(perl -0ne 'print "$1\n" while /names\[\] = \{((?:"[a-z ]+",?\s*)+)\}/sg' "$src/src/worker/transfer.c" |
  grep -o '"[a-z ]*"' | tr -d '"')
[ "$(wc -l <<<"$events")" -ge 8 ] && [ "$(wc -l <<<"$states")" -ge 5 ] || { echo "found too few history events in src/: $events" >&2; exit 1; }
missing=""
while read -r what; do
  [ -n "$what" ] || continue
  grep -q "ev_${what// /_}: '" "$src/web/i18n.js" || missing="$missing '$what'"
done <<<"$(printf '%s\n%s\n' "$events" "$states")"
if [ -n "$missing" ]; then
  echo "web/i18n.js has no Arabic ev_<what> for the history events:$missing" >&2
  exit 1
fi
echo "web/i18n.js names every history event in Arabic"
