#!/usr/bin/env bash
# Builds Bitcoin Core's bitcoind and bitcoin-cli for the tests, once per
# machine, outside the clone. No registry ships Core binaries; crates.io ships
# Core's source inside the crate libbitcoinkernel-sys (its bitcoin/ folder:
# Bitcoin Core 31.x without wallet, ZMQ, Qt and test suites). The crate is
# fetched with cargo, the tree configured with CMake and the two binaries
# built (about 20 minutes on 2 cores). Idempotent: a cached build whose
# binaries answer --version is used as it is.
#
#   scripts/install-core.sh          # prints "bitcoin core: <dir>" last
#   REGTEST_CORE_DIR=/path ...          # cache somewhere else
set -euo pipefail
crate=libbitcoinkernel-sys
version=0.4.1
dir="${REGTEST_CORE_DIR:-$HOME/.cache/ndas/core-$crate-$version}"
bin="$dir/bin"
if [ -x "$bin/bitcoind" ] && [ -x "$bin/bitcoin-cli" ] && "$bin/bitcoind" -version >/dev/null 2>&1; then
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

# The source: cargo fetches the pinned crate into its registry cache.
work="${dir}.build"
mkdir -p "$work/fetch/src"
cat >"$work/fetch/Cargo.toml" <<EOF
[package]
name = "ndas-core-source"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
$crate = "=$version"
EOF
: >"$work/fetch/src/lib.rs"
cargo fetch --quiet --manifest-path "$work/fetch/Cargo.toml"
cache=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$crate-$version.crate" | head -1)
[ -f "$cache" ] || { echo "install-core: cargo fetched $crate $version but its .crate is not in the registry cache" >&2; exit 1; }
rm -rf "$work/src"
mkdir -p "$work/src"
tar -xzf "$cache" -C "$work/src"
src="$work/src/$crate-$version/bitcoin"
[ -f "$src/CMakeLists.txt" ] || { echo "install-core: no bitcoin/CMakeLists.txt in $crate $version" >&2; exit 1; }

echo "install-core: building bitcoind and bitcoin-cli from $crate $version (about 20 minutes on 2 cores)" >&2
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DENABLE_WALLET=OFF -DWITH_ZMQ=OFF -DWITH_EMBEDDED_ASMAP=OFF -DBUILD_TESTS=OFF \
    -DBUILD_BENCH=OFF -DBUILD_GUI=OFF -DENABLE_IPC=OFF -DBUILD_DAEMON=ON -DBUILD_CLI=ON \
    -DBUILD_UTIL=OFF -DBUILD_TX=OFF -DBUILD_WALLET_TOOL=OFF -DBUILD_KERNEL_LIB=OFF \
    >"$work/configure.log" 2>&1 || { tail -30 "$work/configure.log" >&2; echo "install-core: cmake configure failed (log: $work/configure.log)" >&2; exit 1; }
jobs=$(nproc 2>/dev/null || echo 2)
cmake --build "$work/build" -j"$jobs" --target bitcoind bitcoin-cli >"$work/build.log" 2>&1 \
    || { tail -30 "$work/build.log" >&2; echo "install-core: build failed (log: $work/build.log)" >&2; exit 1; }
mkdir -p "$bin.tmp"
cp "$work/build/bin/bitcoind" "$work/build/bin/bitcoin-cli" "$bin.tmp/"
strip "$bin.tmp/bitcoind" "$bin.tmp/bitcoin-cli" 2>/dev/null || true
"$bin.tmp/bitcoind" -version | head -1
rm -rf "$bin"
mv "$bin.tmp" "$bin"
rm -rf "$work"
echo "bitcoin core: $bin"
