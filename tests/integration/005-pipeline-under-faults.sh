#!/usr/bin/env bash
# The fault matrix's short form (scripts/fault-matrix.sh, docs/RELIABILITY.md):
# 24 Salla and 8 Zid orders through the whole pipeline (stores → tarheel
# intake → worker → Qoyod) with the matrix's faults on every side at once —
# duplicated, reordered, badly signed, slow and lost webhooks; failing and
# rate-limited store reads; lost Qoyod answers after the write, 503s,
# resets, 429 with Retry-After, latency; both stores' access tokens expired
# every 10 s — and the matrix's own checks, from the emulators' records: no
# order lost, none with two invoices, no total off by a halala, one payment
# per invoice, one credit note per cancellation, refund and return, nothing
# left transferring. The lost refresh answer (a reused refresh token and a
# reinstall) is left to the long form and to 014-crash-rehearsal
# (token.refreshed): a reinstall holds orders a minute.
set -euo pipefail
build=$1 src=$2
source "$src/tests/integration/lib.sh"
# MATRIX_TIMEOUT bounds liveness only (the run takes 16-65 s on 2 idle
# cores); it was 90 s, and a run on a machine loaded by two other builds and
# a 2500-order matrix ended every count at 0 but after 180 s.
MATRIX_DIR=$tmp/matrix MATRIX_POLL=4 MATRIX_EXPIRE_S=4 MATRIX_REFRESH_REUSE=0 MATRIX_BURSTS=4 MATRIX_TIMEOUT=300 \
  bash "$src/scripts/fault-matrix.sh" "$build" 24 8 >"$tmp/matrix.out" 2>&1 || {
  # what kept orders waiting: the retries and failures tarheel logged
  grep -E "level=(warn|error)" "$tmp/matrix/tarheel.log" 2>/dev/null | tail -40 || true
  fail "the fault matrix found faults: $(tail -3 "$tmp/matrix.out")"
}
cat "$tmp/matrix.out"
