#!/usr/bin/env bash
# Builds para (the Parasite pool's toolkit: `para pool` is the real upstream
# Stratum V1 pool the upstream tests mine to) once per machine, outside the
# clone: `cargo install` from crates.io with the crate's own lock file. It
# needs a C compiler (secp256k1-sys). Idempotent: a cached binary that
# answers --version is used as it is.
#
#   scripts/install-para.sh             # prints "para: <path>" last
#   PARA_DIR=/path ...                  # cache somewhere else
set -euo pipefail
crate=para
version=0.6.0
dir="${PARA_DIR:-$HOME/.cache/ndas/$crate-$version}"
bin="$dir/bin/$crate"
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
    "$bin" --version | head -1
    echo "para: $bin"
    exit 0
fi

# A C compiler for secp256k1-sys, as a Debian package. Installed when we are
# root with apt (CI on a fresh machine); otherwise named, and we stop.
need=()
command -v cc >/dev/null || need+=(build-essential)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "install-para: installing ${need[*]}" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "install-para: para needs the Debian packages: ${need[*]}" >&2
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
echo "install-para: building $crate $version (about ten minutes on 2 cores)" >&2
start=$(date +%s)
if ! CARGO_TARGET_DIR="$work/target" nice -n 10 cargo install "$crate" --version "$version" \
    --locked --root "$work/root" >"$log" 2>&1; then
    tail -30 "$log" >&2
    echo "install-para: cargo install failed (log: $log)" >&2
    exit 1
fi
"$work/root/bin/$crate" --version | head -1
echo "install-para: built in $(($(date +%s) - start)) s" >&2
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
mv "$work/root" "$dir"
rm -rf "$work"
echo "para: $bin"
