#!/usr/bin/env bash
# Builds Bitcoin Core's bitcoind, bitcoin-node and bitcoin-cli for the tests, once per
# machine, outside the clone. No registry ships Core binaries; crates.io ships
# Core's source inside the crate libbitcoinkernel-sys (its bitcoin/ folder:
# Bitcoin Core 31.x without wallet, ZMQ, Qt and test suites). The crate is
# fetched with cargo, the tree configured with CMake and the two binaries
# built (about 20 minutes on 2 cores). Idempotent: a cached build whose
# binaries answer --version is used as it is.
#
# With ZMQ: para's pool (the upstream pool of the tests) refuses a node that
# does not publish `hashblock`. The crate's 31.x source leaves out src/zmq;
# its 0.2.0 (Core 30.99) still ships it, and that folder is put back, with
# the one name 31 changed (`RPCHelpMan` is `RPCMethod`).
#
# With IPC: bitcoin-node is bitcoind that also serves its block templates over
# Cap'n Proto IPC (`-ipcbind=unix`), which is how the Stratum Reference
# Implementation's pool_sv2 (the SV2 upstream pool of the tests) gets work.
# It needs Debian's capnproto and libcapnp-dev.
#
#   scripts/install-core.sh          # prints "bitcoin core: <dir>" last
#   REGTEST_CORE_DIR=/path ...          # cache somewhere else
set -euo pipefail
crate=libbitcoinkernel-sys
version=0.4.1
zmq_version=0.2.0
dir="${REGTEST_CORE_DIR:-$HOME/.cache/ndas/core-$crate-$version-zmq-ipc}"
bin="$dir/bin"
if [ -x "$bin/bitcoind" ] && [ -x "$bin/bitcoin-cli" ] && [ -x "$bin/bitcoin-node" ] \
    && "$bin/bitcoind" -version >/dev/null 2>&1; then
    "$bin/bitcoind" -version | head -1
    echo "bitcoin core: $bin"
    exit 0
fi

# Build tools, as Debian packages. Installed when we are root with apt (CI on
# a fresh machine); otherwise the missing ones are named and we stop.
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null && command -v make >/dev/null || need+=(build-essential)
command -v pkg-config >/dev/null || need+=(pkg-config)
[ -f /usr/include/boost/multi_index_container.hpp ] || need+=(libboost-dev)
[ -f /usr/include/event2/event.h ] || need+=(libevent-dev)
[ -f /usr/include/zmq.h ] || need+=(libzmq3-dev)
command -v capnp >/dev/null || need+=(capnproto)
[ -f /usr/include/capnp/capability.h ] || need+=(libcapnp-dev)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "install-core: installing ${need[*]}" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "install-core: Bitcoin Core needs the Debian packages: ${need[*]}" >&2
        echo "  sudo apt-get install ${need[*]}" >&2
        exit 1
    fi
fi

# The sources: cargo fetches each pinned crate into its registry cache (one
# manifest each: two versions of a `links` crate cannot share a graph).
work="${dir}.build"
rm -rf "$work/src"
mkdir -p "$work/src"
unpack() {
    local v=$1 cache
    mkdir -p "$work/fetch-$v/src"
    printf '[package]\nname = "ndas-core-source"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n[dependencies]\n%s = "=%s"\n' \
        "$crate" "$v" >"$work/fetch-$v/Cargo.toml"
    : >"$work/fetch-$v/src/lib.rs"
    cargo fetch --quiet --manifest-path "$work/fetch-$v/Cargo.toml"
    cache=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$crate-$v.crate" | head -1)
    [ -f "$cache" ] || { echo "install-core: cargo fetched $crate $v but its .crate is not in the registry cache" >&2; exit 1; }
    tar -xzf "$cache" -C "$work/src"
}
unpack "$version"
unpack "$zmq_version"
src="$work/src/$crate-$version/bitcoin"
[ -f "$src/CMakeLists.txt" ] || { echo "install-core: no bitcoin/CMakeLists.txt in $crate $version" >&2; exit 1; }
zmq="$work/src/$crate-$zmq_version/bitcoin/src/zmq"
[ -f "$zmq/zmqrpc.cpp" ] || { echo "install-core: no bitcoin/src/zmq in $crate $zmq_version" >&2; exit 1; }
if [ -e "$src/src/zmq" ]; then
    echo "install-core: $crate $version ships src/zmq itself: drop the $zmq_version graft" >&2
    exit 1
fi
cp -r "$zmq" "$src/src/zmq"
sed -i 's/RPCHelpMan/RPCMethod/g' "$src/src/zmq/"*.cpp "$src/src/zmq/"*.h

echo "install-core: building bitcoind, bitcoin-node and bitcoin-cli from $crate $version (about 20 minutes on 2 cores)" >&2
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DENABLE_WALLET=OFF -DWITH_ZMQ=ON -DWITH_EMBEDDED_ASMAP=OFF -DBUILD_TESTS=OFF \
    -DBUILD_BENCH=OFF -DBUILD_GUI=OFF -DENABLE_IPC=ON -DBUILD_DAEMON=ON -DBUILD_CLI=ON \
    -DBUILD_UTIL=OFF -DBUILD_TX=OFF -DBUILD_WALLET_TOOL=OFF -DBUILD_KERNEL_LIB=OFF \
    >"$work/configure.log" 2>&1 || { tail -30 "$work/configure.log" >&2; echo "install-core: cmake configure failed (log: $work/configure.log)" >&2; exit 1; }
jobs=$(nproc 2>/dev/null || echo 2)
cmake --build "$work/build" -j"$jobs" --target bitcoind bitcoin-node bitcoin-cli >"$work/build.log" 2>&1 \
    || { tail -30 "$work/build.log" >&2; echo "install-core: build failed (log: $work/build.log)" >&2; exit 1; }
mkdir -p "$bin.tmp"
cp "$work/build/bin/bitcoind" "$work/build/bin/bitcoin-node" "$work/build/bin/bitcoin-cli" "$bin.tmp/"
strip "$bin.tmp/bitcoind" "$bin.tmp/bitcoin-node" "$bin.tmp/bitcoin-cli" 2>/dev/null || true
"$bin.tmp/bitcoind" -version | head -1
rm -rf "$bin"
mv "$bin.tmp" "$bin"
rm -rf "$work"
echo "bitcoin core: $bin"
