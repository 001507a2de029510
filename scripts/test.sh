#!/usr/bin/env bash
# The test command: installs the regtest node if missing, then runs every test
# (unit, integration against the real node, and the benches in test mode).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-node.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --all-targets "$@" 2>&1 | tee "$log"
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
