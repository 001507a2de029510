#!/usr/bin/env bash
# Builds para (the Parasite pool's toolkit: `para pool` is the real upstream
# Stratum V1 pool the upstream tests mine to) once per machine, outside the
# clone (scripts/install-peer.sh). It needs a C compiler (secp256k1-sys).
#
#   scripts/install-para.sh             # prints "para: <path>" last
#   PARA_DIR=/path ...                  # cache somewhere else
set -euo pipefail
crate=para
version=0.6.0
dir="${PARA_DIR:-$HOME/.cache/ndas/$crate-$version}"
label=para
minutes=10
flags=()
. "$(dirname "$0")/install-peer.sh"
