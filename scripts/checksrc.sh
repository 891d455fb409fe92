#!/usr/bin/env bash
# Source checks from STYLE.md, run by ctest (style_checksrc):
#  C1  no #include that points up the layer order;
#  C2  every src/**/*.c (but main.c) has a sibling .h that opens with a comment;
#  C8  no bare malloc/calloc/realloc/strdup/sprintf/strcpy/strcat/atoi/gets/strtok
#      outside src/core/;
#  C13 no float/double in the money module.
set -u
top=${1:-$(dirname "$0")/..}
cd "$top" || exit 2
fail=0
say() { echo "checksrc: $*"; fail=1; }

# Layer order, lowest first. sim/ sits beside the product and may use core, net.
layers=(core net model store platform qoyod worker http cli)
rank() { local i; for i in "${!layers[@]}"; do [ "${layers[$i]}" = "$1" ] && { echo "$i"; return; }; done; echo -1; }

for f in $(git ls-files 'src/*.c' 'src/*.h' 2>/dev/null || find src -name '*.[ch]'); do
  dir=$(echo "$f" | cut -d/ -f2)
  [ -d "src/$dir" ] || continue
  me=$(rank "$dir")
  while IFS= read -r inc; do
    idir=${inc%%/*}
    [ "$idir" = "$inc" ] && continue
    them=$(rank "$idir")
    [ "$them" -lt 0 ] && continue
    if [ "$me" -ge 0 ] && [ "$them" -gt "$me" ]; then
      say "$f includes \"$inc\": $dir/ may not include the higher layer $idir/"
    fi
  done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
done

for c in $(git ls-files 'src/*/*.c' 'sim/*.c' 2>/dev/null); do
  case "$c" in */main.c|sim/sim_main.c) continue;; esac
  h=${c%.c}.h
  if [ ! -f "$h" ]; then say "$c has no header $h"; continue; fi
  head -c 3 "$h" | grep -q '^/\*' || say "$h does not open with a comment saying what the module is for"
done

banned='\b(malloc|calloc|realloc|strdup|sprintf|vsprintf|strcpy|strcat|atoi|atol|gets|strtok)[[:space:]]*\('
for f in $(git ls-files 'src/*.c' 'sim/*.c' 2>/dev/null); do
  case "$f" in src/core/*) continue;; esac
  grep -nE "$banned" "$f" | grep -vE '^\s*[0-9]+:\s*(/\*|\*)' | while IFS= read -r l; do
    echo "checksrc: $f:$l: banned call (use core/xmalloc.h, snprintf, strtol)"; done | grep . && fail=1
done

# Code lines only: comments may explain why there is no floating point.
if grep -nHE '\b(float|double)\b' src/core/money.c src/core/money.h 2>/dev/null \
    | grep -vE '^[^:]+:[0-9]+:\s*(/\*|\*|//)'; then
  say "floating point in the money module"
fi

if [ $fail -eq 0 ]; then echo "checksrc: ok"; fi
exit $fail
