# tests/integration/lib.sh — sourced by the NNN-*.sh scripts after build=$1:
# a temp dir removed at exit together with every process the script started
# (append their pids to `pids`), and the helpers every script needs.

tmp=$(mktemp -d)
pids=()

# Secrets the emulators issue have recognisable shapes (Salla's ory_at_ /
# ory_rt_, Zid's JWT-like authorization, mgr_ and def50200 refresh tokens).
# None may appear in what tarheel wrote: its logs, its answers, its
# database (sealed at rest). The emulators' own logs and files a test writes
# on purpose (named tokens*) are theirs, not tarheel's.
TH_SECRET_RE='ory_(at|rt)_[0-9a-f]{32}|mgr_[0-9a-f]{32}|def50200[0-9a-f]{32}|eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9\.[0-9a-f]{32}'
# secret_leaks DIR: 0 (and says where) when a file tarheel wrote holds one.
secret_leaks() {
  local hits
  hits=$(grep -rlaE "$TH_SECRET_RE" "$1" \
    --exclude='qoyod*' --exclude='salla*' --exclude='zid*' --exclude='receiver*' \
    --exclude='tokens*' --exclude='*.json.sim' 2>/dev/null || true)
  [ -z "$hits" ] && return 1
  echo "FAIL: an OAuth token the emulators issued is in what tarheel wrote: $hits" >&2
  grep -haoE "$TH_SECRET_RE" $hits | head -3 | cut -c1-14 | sed 's/$/… (cut)/' >&2
  return 0
}
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -d "$tmp" ] && secret_leaks "$tmp"; then rc=1; fi
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT

# fail MESSAGE: says why, shows the end of every *.out log, exits 1.
fail() {
  echo "FAIL: $*" >&2
  for f in "$tmp"/*.out; do
    [ -e "$f" ] || continue
    echo "== $f" >&2
    tail -40 "$f" >&2
  done
  exit 1
}

# port: a free loopback port, below the ephemeral range (32768+, where client
# sockets could already hold it) and the fixed test ports (29xxx).
port() {
  local p
  for _ in $(seq 50); do
    p=$((12000 + RANDOM % 16000))
    (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  fail "no free port"
}

# wait_for PATTERN FILE: until the pattern shows in the file (10 s).
wait_for() {
  for _ in $(seq 200); do grep -q "$1" "$2" 2>/dev/null && return 0; sleep 0.05; done
  fail "'$1' not in $2"
}

# start NAME ARGS...: `tarheel-sim NAME` on a free port; sets url_NAME.
start() {
  local name=$1
  shift
  "$build/tarheel-sim" "$name" --listen 127.0.0.1:0 "$@" >"$tmp/$name.out" 2>&1 &
  pids+=($!)
  wait_for "listening on" "$tmp/$name.out"
  eval "url_$name=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$tmp/$name.out")"
}
