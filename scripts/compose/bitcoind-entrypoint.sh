#!/bin/sh
# As the bitcoin/bitcoin image's: arguments that start with "-" are
# bitcoind's; bitcoind and bitcoin-cli get the data directory and run as
# the bitcoin user.
set -e
if [ "${1#-}" != "$1" ]; then
  set -- bitcoind "$@"
fi
if [ "$1" = bitcoind ] || [ "$1" = bitcoin-cli ]; then
  if [ "$(id -u)" = 0 ]; then
    mkdir -p "$BITCOIN_DATA"
    chown -R bitcoin:bitcoin "$BITCOIN_DATA"
    set -- "$@" -datadir="$BITCOIN_DATA"
    exec setpriv --reuid=bitcoin --regid=bitcoin --init-groups "$@"
  fi
  set -- "$@" -datadir="$BITCOIN_DATA"
fi
exec "$@"
