#!/usr/bin/env bash
# The test command: installs the regtest node if missing, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-node.sh
cargo test --all-targets "$@"
