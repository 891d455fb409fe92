#!/usr/bin/env bash
# Builds the fuzz targets with clang's libFuzzer (fuzz/CMakeLists.txt) and
# runs each for a while, starting from the committed corpus fuzz/corpus/<t>/.
#
#   scripts/fuzz.sh                       # every target, 60 s each
#   scripts/fuzz.sh --seconds 8           # the short form make check runs
#   scripts/fuzz.sh --seconds 3600 fuzz_http   # a long run of one target
#   scripts/fuzz.sh --update-corpus ...   # afterwards, merge new coverage
#                                         # into fuzz/corpus/<t> (commit it)
#
# Prints one line per target (executions, seconds, corpus size, crashes) and
# a total; exits 1 when any target crashed, leaked or broke an invariant.
# The input that did is kept as <build>/crashes/<target>-crash-<sha1>: add
# it to fuzz/corpus/<target>/ once fixed, so the replay test keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD

seconds=60
build=${TMPDIR:-/tmp}/tarheel-fuzz
update=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --update-corpus) update=1; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

command -v clang >/dev/null ||
  { echo "fuzz.sh: clang not found: run scripts/deps.sh --all" >&2; exit 1; }
[ -f "$(clang -print-file-name=libclang_rt.fuzzer-x86_64.a)" ] ||
  { echo "fuzz.sh: libFuzzer missing: apt-get install libclang-rt-dev" >&2; exit 1; }

CC=clang cmake -S "$SRC/fuzz" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null

if [ ${#targets[@]} -eq 0 ]; then
  for f in "$SRC"/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi

mkdir -p "$build/crashes"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
total_runs=0 failed=0
printf '%-22s %12s %8s %8s %s\n' target executions seconds corpus result
for t in "${targets[@]}"; do
  corpus="$SRC/fuzz/corpus/$t"
  [ -d "$corpus" ] || { echo "fuzz.sh: no corpus $corpus" >&2; exit 1; }
  work="$build/work/$t"
  mkdir -p "$work"
  log="$build/$t.log"
  start=$(date +%s)
  rc=0
  "$build/$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2560 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$build/crashes/$t-" \
    "$work" "$corpus" >"$log" 2>&1 || rc=$?
  took=$(( $(date +%s) - start ))
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  runs=${runs:-0}
  size=$(ls "$work" | wc -l)
  if [ $rc -ne 0 ]; then
    result="FAILED (exit $rc, log $log)"
    failed=$((failed + 1))
  else
    result=ok
  fi
  total_runs=$((total_runs + runs))
  printf '%-22s %12s %8s %8s %s\n' "$t" "$runs" "$took" "$size" "$result"
  if [ $rc -ne 0 ]; then grep -m 20 -E 'ERROR|invariant|SUMMARY|Test unit' "$log" >&2 || true; fi
  if [ $update -eq 1 ] && [ $rc -eq 0 ]; then
    "$build/$t" -merge=1 "$corpus" "$work" >/dev/null 2>&1
  fi
done
echo "fuzz: ${#targets[@]} targets, $total_runs executions, $failed failed"
[ $failed -eq 0 ]
