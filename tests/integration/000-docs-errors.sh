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
