#!/usr/bin/env bash
# Crash rehearsals, the short form: one SIGKILL at each named crash point of
# the pipeline (src/core/crash.h), then a restart; every accepted order must
# end as exactly one invoice (and one payment) with an equal total, nothing
# left transferring. The long run: scripts/crash-rehearsal.sh BUILD --rounds N
# (figures in docs/RELIABILITY.md).
set -euo pipefail
build=$1 src=$2
bash "$src/scripts/crash-rehearsal.sh" "$build" --rounds 1 --seed "${TH_CRASH_SEED:-$RANDOM}"
