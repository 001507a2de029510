#!/usr/bin/env bash
# Writes what docker-compose.yml needs and must not contain: .env with fresh
# random credentials, and deploy/utek/ with the node credentials NDAS reads.
# For regtest it also writes a development UTEK licence; for mainnet, copy the
# factory metadata.json into deploy/utek/ instead. Existing files are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
random() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
network="${BITCOIN_NETWORK:-regtest}"
if [ ! -f .env ]; then
  umask 077
  cat > .env <<ENV
BITCOIN_NETWORK=$network
NDAS_NETWORK=$( [ "$network" = main ] && echo mainnet || echo "$network" )
BITCOIN_RPC_USER=ndas
BITCOIN_RPC_PASSWORD=$(random)
GRAFANA_ADMIN_PASSWORD=$(random)
# Regtest address (coins worthless); set your own for mainnet.
PAYOUT_ADDRESS=${PAYOUT_ADDRESS:-bcrt1q77w0kxlasn700422reaktdsn7n36gcpvp5pja9}
ENV
  echo "wrote .env"
fi
# shellcheck disable=SC1091
. ./.env
# bitcoind gets the password as Bitcoin Core's rpcauth (a salted HMAC, as
# share/rpcauth/rpcauth.py makes it), so no process listing shows it.
if ! grep -q '^BITCOIN_RPC_AUTH=' .env; then
  salt=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  hmac=$(python3 -c 'import hmac, hashlib, sys; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())' "$salt" "$BITCOIN_RPC_PASSWORD")
  printf "BITCOIN_RPC_AUTH='%s:%s\$%s'\n" "$BITCOIN_RPC_USER" "$salt" "$hmac" >> .env
  echo "wrote BITCOIN_RPC_AUTH to .env"
fi
mkdir -p deploy/utek
if [ ! -f deploy/utek/utek_v26.conf ]; then
  umask 077
  printf 'rpcuser=%s\nrpcpassword=%s\nrpcconnect=bitcoind\n' "$BITCOIN_RPC_USER" "$BITCOIN_RPC_PASSWORD" > deploy/utek/utek_v26.conf
  echo "wrote deploy/utek/utek_v26.conf"
fi
if [ ! -f deploy/utek/metadata.json ]; then
  if [ "$network" != regtest ]; then
    echo "copy the factory UTEK metadata.json to deploy/utek/metadata.json" >&2
    exit 1
  fi
  licence=$(python3 -c 'import uuid; print(uuid.uuid4())')
  token=$(printf '{"license": "%s", "version": "26.0"}' "$licence" | base64 -w0)
  printf '{"license_uuid": "%s", "factory_token": "%s"}\n' "$licence" "$token" > deploy/utek/metadata.json
  echo "wrote a development licence to deploy/utek/metadata.json (regtest only)"
fi
# NDAS runs as the user who owns deploy/utek/ and data/ndas/ (the block
# journal), so it reads its 0600 credentials and writes its journal without
# either being opened to others; as root, that user is the image's ndas (10001).
if [ "$(id -u)" = 0 ]; then
  uid=10001 gid=10001
else
  uid=$(id -u) gid=$(id -g)
fi
if ! grep -q '^NDAS_UID=' .env; then
  printf 'NDAS_UID=%s\nNDAS_GID=%s\n' "$uid" "$gid" >> .env
  echo "NDAS runs as $uid:$gid (NDAS_UID, NDAS_GID in .env)"
fi
if ! grep -q '^METRICS_TOKEN=' .env; then
  printf 'METRICS_TOKEN=%s\n' "$(random)" >> .env
  echo "wrote METRICS_TOKEN to .env (the status page's password)"
fi
# The fleet history's database: the admin's, NDAS's and Grafana's
# read-only passwords in .env (deploy/postgres/init-roles.sh makes the
# roles), and NDAS's URL in a file of its own that only NDAS reads.
for key in POSTGRES_PASSWORD NDAS_DB_PASSWORD GRAFANA_DB_PASSWORD; do
  if ! grep -q "^$key=" .env; then
    printf '%s=%s\n' "$key" "$(random)" >> .env
    echo "wrote $key to .env"
  fi
done
# shellcheck disable=SC1091
. ./.env
mkdir -p deploy/secrets
if [ ! -f deploy/secrets/database_url ]; then
  (umask 077; printf 'postgres://ndas:%s@postgres:5432/ndas\n' "$NDAS_DB_PASSWORD" > deploy/secrets/database_url)
  echo "wrote deploy/secrets/database_url (NDAS's fleet history database)"
fi
mkdir -p data/ndas
if [ "$(id -u)" = 0 ]; then
  chown "$NDAS_UID:$NDAS_GID" deploy/utek/utek_v26.conf deploy/utek/metadata.json deploy/secrets/database_url data/ndas
fi
