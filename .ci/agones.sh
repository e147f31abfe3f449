#!/usr/bin/env bash
# The Agones fleet (docs/AGONES.md), checked without Kubernetes: the `agones` feature's lints
# and tests (the server's SDK calls against the stand-in sidecar of tools/agones-sidecar),
# then the manifests of deploy/agones/ validated offline against Kubernetes' and Agones'
# schemas, including proof that broken manifests are rejected.
#
# Idempotent. Installs what it needs from Debian's packages (protoc, python3-venv; as root,
# as on CI) and PyPI (kubernetes-validate, in a venv under the cache directory); nothing else
# is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n== %s\n' "$*"; }

# The Kubernetes version the core objects are validated against (and the Pod templates of the
# Agones objects): one that Agones 1.61 supports.
KUBERNETES_VERSION="${KUBERNETES_VERSION:-1.34}"
KUBERNETES_VALIDATE_VERSION=1.37.0

apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "missing: $* (install them: apt-get install $*)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

step "protoc (the Agones SDK crate compiles its protos)"
# libprotobuf-dev holds the well-known .proto files (google/protobuf/*.proto) they import.
if ! command -v protoc >/dev/null 2>&1 || [ ! -f /usr/include/google/protobuf/descriptor.proto ]; then
    apt_install protobuf-compiler libprotobuf-dev
fi
protoc --version

step "cargo clippy --features agones (throng and the stand-in sidecar, warnings are errors)"
cargo clippy -p throng -p throng-agones-sidecar --all-targets \
    --features agones,throng-agones-sidecar/grpc -- -D warnings

step "tests: the SDK calls against the stand-in sidecar"
cargo test -p throng-agones-sidecar --features grpc
cargo test -p throng --features agones --lib agones::
cargo test -p throng --features agones --test it agones::

step "manifests: offline validation (Kubernetes ${KUBERNETES_VERSION}, Agones 1.61)"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/throng-ci/agones-venv-${KUBERNETES_VALIDATE_VERSION}"
if ! "$venv/bin/python" -c 'import kubernetes_validate, jsonschema, yaml' 2>/dev/null; then
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        apt_install python3-venv
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}"
fi
validate() { "$venv/bin/python" .ci/agones-validate.py --kubernetes-version "$KUBERNETES_VERSION" "$@"; }

# The manifests as shipped, then each broken on purpose in turn (the validator's self-test).
validate --self-test deploy/agones

# And the command line's verdict on a broken file: a Fleet whose health period is a string.
broken="$(mktemp -d)"
trap 'rm -rf "$broken"' EXIT
sed 's/periodSeconds: 3/periodSeconds: "three"/' deploy/agones/gameserver.yaml >"$broken/gameserver.yaml"
if grep -q 'periodSeconds: "three"' "$broken/gameserver.yaml" && ! validate "$broken/gameserver.yaml"; then
    echo "the broken manifest was rejected, as it should be"
else
    echo "a broken manifest passed the validation" >&2
    exit 1
fi

step "Agones: all checks passed"
