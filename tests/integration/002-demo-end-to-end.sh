#!/usr/bin/env bash
# The main job, end to end: `scripts/demo.sh --exit-when-done` starts the
# emulators and tarheel on SQLite, installs the app in a Salla store, places
# orders and moves them through statuses, then cancels and refunds two Salla
# orders and returns part of a Zid order after their transfer; it exits 0
# only if every transferable order became exactly one Qoyod invoice with an
# equal total, every other one failed with a reason, each cancellation and
# return became exactly one credit note, and `tarheel reconcile` finds no
# difference in either store.
set -euo pipefail
build=$1 src=$2
source "$src/tests/integration/lib.sh"
# Free ports, so that runs side by side (ctest -j, two checkouts) never meet.
export QOYOD_PORT=$(port) SALLA_PORT=$(port) ZID_PORT=$(port) TARHEEL_PORT=$(port)
export DEMO_CALLBACK_PORT=$(port) DEMO_ORDERS=16
export TARHEEL_DEMO_DIR=$tmp
"$build/tarheel" demo --exit-when-done
