#!/usr/bin/env bash
# Installs every Debian package tarheel needs to build, test and run its demo.
# Idempotent: packages already installed are skipped, and apt-get runs only when
# something is missing. Run as root (or with sudo available).
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  libcurl4-openssl-dev libmicrohttpd-dev libjansson-dev libsqlite3-dev
  libpq-dev libssl-dev libcmocka-dev
  curl sqlite3 jq
)
# Extra packages only the full test suite needs (browser tests, PostgreSQL,
# clang's libFuzzer for the fuzz targets).
if [ "${1:-}" = "--all" ]; then
  PKGS+=(postgresql chromium clang libclang-rt-dev)
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
