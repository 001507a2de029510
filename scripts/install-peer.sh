#!/usr/bin/env bash
# What install-translator.sh, install-para.sh and install-pool-sv2.sh share:
# `cargo install` of a pinned crate from crates.io with its own lock file, once
# per machine, cached outside the clone. Sourced, after the caller has set:
#   crate, version, dir (the cache), label (what it prints), minutes (the
#   build's usual time on 2 cores) and, optionally, the array flags (more
#   `cargo install` flags).
# Idempotent: a cached binary that answers --version is used as it is. A
# C compiler (for secp256k1-sys) is installed as a Debian package when we
# are root with apt (CI on a fresh machine); otherwise named, and we stop.
bin="$dir/bin/$crate"
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
    "$bin" --version | head -1
    echo "$label: $bin"
    exit 0
fi
need=()
command -v cc >/dev/null || need+=(build-essential)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "install-$label: installing ${need[*]}" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "install-$label: $crate needs the Debian packages: ${need[*]}" >&2
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
echo "install-$label: building $crate $version (about $minutes minutes on 2 cores)" >&2
start=$(date +%s)
if ! CARGO_TARGET_DIR="$work/target" nice -n 10 cargo install "$crate" --version "$version" \
    --locked ${flags[@]+"${flags[@]}"} --root "$work/root" >"$log" 2>&1; then
    tail -30 "$log" >&2
    echo "install-$label: cargo install failed (log: $log)" >&2
    exit 1
fi
"$work/root/bin/$crate" --version | head -1
echo "install-$label: built in $(($(date +%s) - start)) s" >&2
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
mv "$work/root" "$dir"
rm -rf "$work"
echo "$label: $bin"
