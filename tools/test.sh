#!/usr/bin/env bash
# The test command (README.md): makes sure the services the tests start for themselves are
# installed (PostgreSQL and nats-server, from Debian's packages: .ci/services.sh; each test
# process runs its own throwaway PostgreSQL cluster, and each zones test its own NATS
# server, on loopback, stopped when they end), then runs every test of the workspace. Extra arguments go to
# `cargo test` (e.g. `tools/test.sh -- zones::`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/services.sh
exec cargo test --workspace "$@"
