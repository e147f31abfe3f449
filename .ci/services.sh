#!/usr/bin/env bash
# Installs the services the tests start for themselves: PostgreSQL (each test process runs a
# throwaway cluster: tools/testdb) and nats-server (zone servers' border exchange), from
# Debian's packages. Starts nothing. Idempotent: what is present is skipped. Run as root on a
# fresh CI machine (.ci/run calls it); elsewhere it only says what is missing.
set -euo pipefail

have_postgres() {
    command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1 && return 0
    local bin
    for bin in /usr/lib/postgresql/*/bin; do
        [ -x "$bin/initdb" ] && [ -x "$bin/postgres" ] && return 0
    done
    return 1
}

missing=()
# Debian's package also creates the `postgres` user, which the test clusters run as when the
# tests run as root (initdb refuses root).
if ! have_postgres || ! id postgres >/dev/null 2>&1; then
    missing+=(postgresql)
fi
# Debian installs it in /usr/sbin, which a user's PATH often lacks.
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)

if [ "${#missing[@]}" -eq 0 ]; then
    echo "services: postgresql and nats-server are installed"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "services: missing ${missing[*]}: install them (Debian: apt-get install ${missing[*]}), as root" >&2
    exit 1
fi
echo "services: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The package's own cluster is not wanted (tests start their own): no cluster is created, and
# policy-rc.d keeps the package from starting any service while it installs.
mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/throng-ci.conf
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}"
have_postgres || { echo "services: postgresql installed, but no initdb/postgres found" >&2; exit 1; }
