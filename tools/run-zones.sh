#!/usr/bin/env bash
# Runs one world as three zone servers on this machine, with the PostgreSQL and NATS they
# share, until Ctrl-C; then stops everything and removes its temporary files.
#
#   tools/run-zones.sh            # world 1200 x 1200, zones west | middle | east
#
# Needs PostgreSQL 15 and nats-server (Debian: `.ci/services.sh` installs both). Zones listen
# for players on 127.0.0.1:7001-7003 (TCP), web on 7081-7083, metrics on 9101-9103. Point
# loadgen at any of them: `cargo run --release -p loadgen -- --addr 127.0.0.1:7001 --bots 300`.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pg_bin/initdb" ] || { echo "PostgreSQL not found: run .ci/services.sh" >&2; exit 1; }
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || { echo "nats-server not found: run .ci/services.sh" >&2; exit 1; }
nats=$(command -v nats-server || echo /usr/sbin/nats-server)

cargo build --release --bin throng
work=$(mktemp -d /tmp/throng-zones.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# initdb refuses root: as root the cluster runs as Debian's `postgres` user.
as_db() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres "$work/pg"
as_db "$pg_bin/initdb" -D "$work/pg" -U throng --auth=trust >/dev/null
as_db "$pg_bin/postgres" -D "$work/pg" -k "$work/pg" -p 55432 -c listen_addresses=127.0.0.1 >"$work/pg.log" 2>&1 &
pids+=($!)
"$nats" -a 127.0.0.1 -p 54222 >"$work/nats.log" 2>&1 &
pids+=($!)
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
        --store "postgres://throng@127.0.0.1:55432/world" --nats nats://127.0.0.1:54222 \
        --world-size 1200 --listen "127.0.0.1:700$i" --web "127.0.0.1:708$i" \
        --metrics "127.0.0.1:910$i" --data-dir "$work/zone-$name" &
    pids+=($!)
done
echo "three zones running (west :7001, middle :7002, east :7003; metrics :9101-9103); Ctrl-C stops them"
wait
