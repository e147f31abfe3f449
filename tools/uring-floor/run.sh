#!/usr/bin/env bash
# The floor's client against uring-floor's server (MODE plain|send|both|tokio), or against the
# floor's own server (MODE floor), as ../../../shared/floor/run.sh runs them.
# CLIENT=spread runs this crate's client instead: each connection's input in its own slot of
# the period, as throng's bots send them, rather than all of them in one burst.
# Usage: [CLIENT=spread] run.sh MODE N [OUT_BYTES=120] [IN_BYTES=16] [HZ=20] [SECONDS=30] [PORT=7911]
set -eu
MODE=${1:?MODE}; N=${2:?N}; OUT=${3:-120}; IN=${4:-16}; HZ=${5:-20}; SECS=${6:-30}; PORT=${7:-7911}
here=$(cd "$(dirname "$0")" && pwd)
floor_src=${FLOOR_SRC:-$here/../../../shared/floor/floor.c}
floor=${TMPDIR:-/tmp}/floor-bin
[ "$floor" -nt "$floor_src" ] 2>/dev/null || gcc -O2 -o "$floor" "$floor_src"
target=$(cd "$here/../.." && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
(cd "$here" && cargo build --release -q)
out=${TMPDIR:-/tmp}/uring-floor.$$
busy() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; t=b+$5+$6; print b, t}' /proc/stat; }
if [ "$MODE" = floor ]; then
  "$floor" server "$PORT" "$OUT" "$HZ" "$SECS" > "$out.server" 2>&1 & sp=$!
else
  "$target/release/uring-floor" "$MODE" "$PORT" "$OUT" "$HZ" "$SECS" > "$out.server" 2>&1 & sp=$!
fi
sleep 0.3
if [ "${CLIENT:-floor}" = spread ]; then
  "$target/release/uring-floor" spread-client "$PORT" "$N" "$IN" "$HZ" "$((SECS - 1))" > "$out.client" 2>&1 & cp=$!
else
  "$floor" client "$PORT" "$N" "$IN" "$HZ" "$((SECS - 1))" > "$out.client" 2>&1 & cp=$!
fi
sleep "$(( SECS / 3 + 1 ))"; read -r b0 t0 < <(busy)
sleep "$(( SECS / 2 ))"; read -r b1 t1 < <(busy)
wait "$cp" "$sp" || true
cat "$out.server" "$out.client"; rm -f "$out.server" "$out.client"
awk -v b=$((b1-b0)) -v t=$((t1-t0)) -v c="$(nproc)" 'BEGIN{printf "machine_busy_cores=%.2f of %d\n", c*b/t, c}'
