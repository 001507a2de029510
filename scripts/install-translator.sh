#!/usr/bin/env bash
# Builds the Stratum Reference Implementation's translator (translator_sv2,
# an SV1 -> SV2 proxy) for the tests, once per machine, outside the clone:
# `cargo install` from crates.io with the crate's own lock file. Without its
# default features it leaves out the monitoring server (about 200 crates
# fewer, and no aws-lc-sys, so no CMake); what is left needs only a C
# compiler (secp256k1-sys) and takes a few minutes on 2 cores. Idempotent: a
# cached binary that answers --version is used as it is.
#
#   scripts/install-translator.sh       # prints "translator_sv2: <path>" last
#   TRANSLATOR_SV2_DIR=/path ...        # cache somewhere else
set -euo pipefail
crate=translator_sv2
version=0.6.0
dir="${TRANSLATOR_SV2_DIR:-$HOME/.cache/ndas/$crate-$version}"
bin="$dir/bin/$crate"
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
    "$bin" --version | head -1
    echo "translator_sv2: $bin"
    exit 0
fi

# A C compiler for secp256k1-sys, as a Debian package. Installed when we are
# root with apt (CI on a fresh machine); otherwise named, and we stop.
need=()
command -v cc >/dev/null || need+=(build-essential)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "install-translator: installing ${need[*]}" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "install-translator: translator_sv2 needs the Debian packages: ${need[*]}" >&2
        echo "  sudo apt-get install ${need[*]}" >&2
        exit 1
    fi
fi

# Built in a scratch folder beside the cache and moved in whole, so a build
# that is stopped half way never leaves a binary that looks installed. Its
# own target folder: the workspace's CARGO_TARGET_DIR is not mixed with it.
work="${dir}.build"
rm -rf "$work"
mkdir -p "$work"
log="$work/install.log"
echo "install-translator: building $crate $version (a few minutes on 2 cores)" >&2
start=$(date +%s)
if ! CARGO_TARGET_DIR="$work/target" nice -n 10 cargo install "$crate" --version "$version" \
    --locked --no-default-features --root "$work/root" >"$log" 2>&1; then
    tail -30 "$log" >&2
    echo "install-translator: cargo install failed (log: $log)" >&2
    exit 1
fi
"$work/root/bin/$crate" --version | head -1
echo "install-translator: built in $(($(date +%s) - start)) s" >&2
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
mv "$work/root" "$dir"
rm -rf "$work"
echo "translator_sv2: $bin"
