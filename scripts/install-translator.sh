#!/usr/bin/env bash
# Builds the Stratum Reference Implementation's translator (translator_sv2,
# an SV1 -> SV2 proxy) for the tests, once per machine, outside the clone
# (scripts/install-peer.sh). Without its default features it leaves out the
# monitoring server (about 200 crates fewer, and no aws-lc-sys, so no
# CMake); what is left needs only a C compiler (secp256k1-sys).
#
#   scripts/install-translator.sh       # prints "translator_sv2: <path>" last
#   TRANSLATOR_SV2_DIR=/path ...        # cache somewhere else
set -euo pipefail
crate=translator_sv2
version=0.6.0
dir="${TRANSLATOR_SV2_DIR:-$HOME/.cache/ndas/$crate-$version}"
label=translator_sv2
minutes=4
flags=(--no-default-features)
. "$(dirname "$0")/install-peer.sh"
