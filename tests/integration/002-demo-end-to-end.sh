#!/usr/bin/env bash
# The main job, end to end: `scripts/demo.sh --exit-when-done` starts the
# emulators and tarheel on SQLite, installs the app in a Salla store, places
# orders and moves them through statuses; it exits 0 only if every
# transferable order became exactly one Qoyod invoice with an equal total and
# every other one failed with a reason.
set -euo pipefail
build=$1 src=$2
export QOYOD_PORT=29100 SALLA_PORT=29200 ZID_PORT=29300 TARHEEL_PORT=29080 DEMO_ORDERS=16
export TARHEEL_DEMO_DIR=$(mktemp -d)
trap 'rm -rf "$TARHEEL_DEMO_DIR"' EXIT
"$build/tarheel" demo --exit-when-done
