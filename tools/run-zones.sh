#!/usr/bin/env bash
# Runs one world as three zone servers on this machine, with the PostgreSQL and NATS they
# share, until Ctrl-C; then stops everything and removes its temporary files.
#
#   tools/run-zones.sh            # world 1200 x 1200, zones west | middle | east
#   tools/run-zones.sh CMD ARG... # the same, but runs CMD once the zones listen, then stops
#
# CMD sees ZONE_PIDS ("west middle east" process ids) and ZONE_METRICS (their metrics
# addresses). THRONG_ZONES_NATS=off runs the zones without NATS (no ghosts), to measure what
# ghosts cost. docs/BENCHMARKS.md ("Zones") shows the load run it was measured with.
#
# Needs PostgreSQL (Debian's, in /usr/lib/postgresql) and nats-server (Debian: `.ci/services.sh` installs both). Zones listen
# for players on 127.0.0.1:7001-7003 (TCP), web on 7081-7083, metrics on 9101-9103, with no
# per-address player caps (every local client comes from 127.0.0.1). Point
# loadgen at any of them: `cargo run --release -p loadgen -- --addr 127.0.0.1:7001 --bots 300`.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pg_bin/initdb" ] || { echo "PostgreSQL not found: run .ci/services.sh" >&2; exit 1; }
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || { echo "nats-server not found: run .ci/services.sh" >&2; exit 1; }
nats=$(command -v nats-server || echo /usr/sbin/nats-server)

# initdb refuses root: as root the cluster runs as Debian's `postgres` user.
as_db() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cargo build --release --bin throng
work=$(mktemp -d /tmp/throng-zones.XXXXXX)
chmod 755 "$work"
pids=()
zone_pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    # PostgreSQL runs under runuser as root: stop it by its data directory, not by a pid.
    [ -f "$work/pg/postmaster.pid" ] && as_db "$pg_bin/pg_ctl" -D "$work/pg" stop -m fast >/dev/null 2>&1
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir -p "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres "$work/pg"
as_db "$pg_bin/initdb" -D "$work/pg" -U throng --auth=trust >/dev/null
as_db "$pg_bin/postgres" -D "$work/pg" -k "$work/pg" -p 55432 -c listen_addresses=127.0.0.1 >"$work/pg.log" 2>&1 &
pids+=($!)
nats_flag=(--nats nats://127.0.0.1:54222)
if [ "${THRONG_ZONES_NATS:-on}" = off ]; then
    nats_flag=()
else
    "$nats" -a 127.0.0.1 -p 54222 >"$work/nats.log" 2>&1 &
    pids+=($!)
fi
until as_db "$pg_bin/pg_isready" -h 127.0.0.1 -p 55432 -q; do sleep 0.2; done
as_db "$pg_bin/createdb" -h 127.0.0.1 -p 55432 -U throng world

cat >"$work/zones.toml" <<EOF
world_size = 1200.0
[[zone]]
name = "west"
rect = [0.0, 0.0, 400.0, 1200.0]
address = "127.0.0.1:7001"
websocket = "ws://127.0.0.1:7081/ws"
[[zone]]
name = "middle"
rect = [400.0, 0.0, 800.0, 1200.0]
address = "127.0.0.1:7002"
websocket = "ws://127.0.0.1:7082/ws"
[[zone]]
name = "east"
rect = [800.0, 0.0, 1200.0, 1200.0]
address = "127.0.0.1:7003"
websocket = "ws://127.0.0.1:7083/ws"
EOF

export THRONG_ZONE_SECRET="local-zones-secret-$(od -An -tx8 -N8 /dev/urandom | tr -d ' ')"
for i in 1 2 3; do
    name=$(grep '^name' "$work/zones.toml" | sed -n "${i}p" | cut -d'"' -f2)
    target/release/throng --zone "$name" --zones "$work/zones.toml" \
        --store "postgres://throng@127.0.0.1:55432/world" "${nats_flag[@]}" \
        --world-size 1200 --listen "127.0.0.1:700$i" --web "127.0.0.1:708$i" \
        --metrics "127.0.0.1:910$i" --data-dir "$work/zone-$name" --stats-interval-s 0 \
        --max-players-per-addr 65536 --max-handshakes-per-addr 65536 \
        >"$work/zone-$name.out" 2>"$work/zone-$name.log" &
    pids+=($!)
    zone_pids+=($!)
    until grep -q "throng web on" "$work/zone-$name.out" 2>/dev/null; do
        kill -0 "$!" 2>/dev/null || { echo "zone $name did not start:" >&2; cat "$work/zone-$name.log" >&2; exit 1; }
        sleep 0.2
    done
done
if [ "$#" -gt 0 ]; then
    ZONE_PIDS="${zone_pids[*]}" ZONE_METRICS="127.0.0.1:9101 127.0.0.1:9102 127.0.0.1:9103" "$@"
    exit $?
fi
echo "three zones running (west :7001, middle :7002, east :7003; metrics :9101-9103); Ctrl-C stops them"
wait
