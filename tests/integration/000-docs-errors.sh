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
