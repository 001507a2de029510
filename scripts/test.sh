#!/usr/bin/env bash
# The test command: installs the peers if missing (Bitcoin Core, built once
# per machine, about 20 minutes; the Bitcoin SV node for the ZMQ tests; the
# Stratum Reference Implementation's SV1 -> SV2 translator, built once, a few
# minutes; para's pool, the upstream pool, built once, about ten minutes;
# the Stratum Reference Implementation's pool, the SV2 upstream pool, built
# once, a few minutes), then runs every test of every crate (unit,
# integration against the real nodes, translator and pools, and the benches
# in test mode).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-core.sh
bash scripts/install-node.sh
bash scripts/install-translator.sh
bash scripts/install-para.sh
bash scripts/install-pool-sv2.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --all-targets "$@" 2>&1 | tee "$log"
# The doc tests too: the label tables' compile_fail examples prove a
# variant without a label does not build.
cargo test --workspace --doc "$@" 2>&1 | tee -a "$log"
# Nothing a full test run prints carries a test credential: the licence
# token of the test kit (crates/testkit, fixed), the regtest nodes' RPC password (pw-<pid>),
# the HTTP Basic credentials built from them, or the fleet history's
# database password (crates/testkit/src/postgres.rs).
token=$(printf '%s' '{"license":"3f2c8a9e-1b7d-4c6e-9a51-0d2e7f4b8c13","version":"26.0"}' | base64 -w0)
if grep -qE "$token|pw-[0-9]+|bmRhc3Rlc3Q6cHct|fleet-test-password" "$log"; then
    echo "a test credential reached the test output:" >&2
    grep -nE "$token|pw-[0-9]+|bmRhc3Rlc3Q6cHct|fleet-test-password" "$log" | head -5 >&2
    exit 1
fi
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
