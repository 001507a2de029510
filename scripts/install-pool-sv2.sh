#!/usr/bin/env bash
# Builds the Stratum Reference Implementation's pool (pool_sv2, a Stratum V2
# pool that takes its templates from Bitcoin Core's bitcoin-node over Cap'n
# Proto IPC) for the tests, once per machine, outside the clone
# (scripts/install-peer.sh). Without its default features it leaves out the
# monitoring server, as the translator does; what is left needs a C compiler
# (secp256k1-sys) and Cap'n Proto's compiler `capnp` (the build script of
# bitcoin-capnp-types runs it on Bitcoin Core's IPC schemas), installed here
# as Debian's capnproto when we are root with apt.
#
#   scripts/install-pool-sv2.sh         # prints "pool_sv2: <path>" last
#   POOL_SV2_DIR=/path ...              # cache somewhere else
#   POOL_SV2=/path/to/pool_sv2 ...      # use that binary, build nothing
set -euo pipefail
crate=pool_sv2
version=0.7.0
label=pool_sv2
if [ -n "${POOL_SV2:-}" ]; then
    [ -x "$POOL_SV2" ] || { echo "install-$label: POOL_SV2=$POOL_SV2 is not an executable" >&2; exit 1; }
    echo "$label: $POOL_SV2"
    exit 0
fi
dir="${POOL_SV2_DIR:-$HOME/.cache/ndas/$crate-$version}"
if [ ! -x "$dir/bin/$crate" ] && ! command -v capnp >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "install-$label: installing capnproto" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq capnproto >/dev/null
    else
        echo "install-$label: $crate needs the Debian package capnproto" >&2
        echo "  sudo apt-get install capnproto" >&2
        exit 1
    fi
fi
minutes=3
flags=(--no-default-features)
. "$(dirname "$0")/install-peer.sh"
