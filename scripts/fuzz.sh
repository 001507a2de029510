#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60; CI runs 40).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Each target starts from its seed corpus (fuzz/corpus/<target>, kept in git)
# plus what earlier runs on this machine found (target/fuzz-corpus/<target>,
# not in git). A crash stops the run with the input in
# target/fuzz-artifacts/<target>/: fix it, then keep the input in
# fuzz/regressions/<target>/, where tests/fuzz_regressions.rs replays it on
# every test run. Each run appends a line to target/fuzz-runs.log.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(stratum_lines method_params template coinbase_merkle sv2_session sv2_frames)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# libFuzzer and the sanitizers need nightly flags: the nightly toolchain where
# there is one, else the stable one allowed them (RUSTC_BOOTSTRAP).
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    echo "fuzz: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1" >&2
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi
# Built outside the clone, once per machine (the fuzz build carries the
# server crate for sv2_frames, minutes when cold): a clone rebuilds only
# its own crates.
fuzz_target="${NDAS_FUZZ_TARGET_DIR:-$HOME/.cache/ndas/fuzz-target}"
"${fuzz[@]}" build --target-dir "$fuzz_target"
for target in "${targets[@]}"; do
    work="target/fuzz-corpus/$target"
    artifacts="target/fuzz-artifacts/$target/"
    mkdir -p "$work" "$artifacts"
    started=$(date +%s)
    # The seeds are read, never written: new inputs go to the work corpus.
    "${fuzz[@]}" run --target-dir "$fuzz_target" "$target" "$work" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 \
        -artifact_prefix="$artifacts" -print_final_stats=1 2>&1 |
        tee "target/fuzz-$target.log" | grep -E '^(#[0-9]+\s+DONE|INFO: Seed|==[0-9]+==|SUMMARY|stat::number_of_executed_units)' || true
    status=${PIPESTATUS[0]}
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "target/fuzz-$target.log" | grep -o '[0-9]*$' || echo 0)
    echo "$(date -u +%FT%TZ) $target seconds=$(( $(date +%s) - started )) runs=$runs corpus=$(ls "$work" | wc -l) status=$status" |
        tee -a target/fuzz-runs.log
    if [ "$status" -ne 0 ]; then
        echo "fuzz: $target failed; the input is in $artifacts" >&2
        tail -40 "target/fuzz-$target.log" >&2
        exit 1
    fi
done
