#!/usr/bin/env bash
# docker-compose.yml run for real, on this machine's own engine: Debian's
# podman serving the Docker API on a socket, driven by Debian's
# docker-compose. No image registry is reachable here, so the images are
# made locally and tagged with the names the compose file uses:
#   - debian:bookworm-slim from debootstrap (cached outside the clone);
#   - ndas:local from deploy/Dockerfile, its runtime stage with the binary
#     built on the host (NDAS_BINARY=host: no Rust toolchain image);
#   - stand-ins for bitcoin/bitcoin (the Bitcoin Core the tests build),
#     prom/prometheus and postgres (Debian's packages), scripts/compose/.
# Grafana is in no registry or package this machine reaches: the stack is
# started without it.
#
# Usage: [NDAS_BIN=path] scripts/compose-stack.sh up DIR
#                                           the compose files copied to DIR,
#                                           compose-init.sh, then up -d
#        scripts/compose-stack.sh down DIR  down -v, and the engine stopped
# Prints the engine's DOCKER_HOST and CONTAINERS_CONF for docker-compose.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache="${NDAS_COMPOSE_CACHE:-$HOME/.cache/ndas/compose}"
mkdir -p "$cache"
action="${1:?up DIR or down DIR}"
stack="${2:?a folder for the stack}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need() {
  command -v "$1" >/dev/null && return
  as_root apt-get update -qq && as_root apt-get install -y -qq "$2" >/dev/null
}
need podman podman
need docker-compose docker-compose
need debootstrap debootstrap
need curl curl

# This sandbox refuses rlimit changes: podman's default ulimits off.
printf '[containers]\ndefault_ulimits = []\npids_limit = 0\n' > "$cache/containers.conf"
export CONTAINERS_CONF="$cache/containers.conf"
sock="$cache/podman.sock"
export DOCKER_HOST="unix://$sock"
ping() { curl -sf --max-time 2 --unix-socket "$sock" http://engine/_ping >/dev/null 2>&1; }

if [ "$action" = down ]; then
  if [ -f "$stack/docker-compose.yml" ]; then
    (cd "$stack" && docker-compose down -v --remove-orphans --timeout 30)
  fi
  if [ -f "$cache/engine.pid" ]; then
    kill "$(cat "$cache/engine.pid")" 2>/dev/null || true
    rm -f "$cache/engine.pid" "$sock"
  fi
  exit 0
fi

# The engine, started once and stopped by `down` (by its PID).
if ! ping; then
  rm -f "$sock"
  podman system service --time=0 "unix://$sock" >"$cache/engine.log" 2>&1 &
  echo $! > "$cache/engine.pid"
  for _ in $(seq 100); do ping && break; sleep 0.1; done
  ping || { echo "podman's API did not start: $cache/engine.log" >&2; exit 1; }
fi

base=docker.io/library/debian:bookworm-slim
if ! podman image exists "$base"; then
  if [ ! -s "$cache/debian-bookworm.tar" ]; then
    rm -rf "$cache/rootfs"
    as_root debootstrap --variant=minbase bookworm "$cache/rootfs" http://deb.debian.org/debian >/dev/null
    rm -rf "$cache/rootfs/var/cache/apt/archives/"*.deb "$cache/rootfs/var/lib/apt/lists/"*
    tar -C "$cache/rootfs" -cf "$cache/debian-bookworm.tar.part" .
    mv "$cache/debian-bookworm.tar.part" "$cache/debian-bookworm.tar"
    rm -rf "$cache/rootfs"
  fi
  podman import "$cache/debian-bookworm.tar" "$base" >/dev/null
fi
podman run --rm "$base" sh -c 'ls /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu' > "$cache/base-libs.txt"

# The shared libraries `binaries` need that the base lacks, into `dest`.
libs() {
  local dest=$1; shift
  mkdir -p "$dest"
  for bin in "$@"; do ldd "$bin" | awk '/=> \//{print $3}'; done | sort -u | while read -r lib; do
    grep -qx "$(basename "$lib")" "$cache/base-libs.txt" || cp -L "$lib" "$dest/"
  done
}

# A stand-in image `tag` from scripts/compose/`name`.Dockerfile and a
# context `prepare` fills (and the build arguments it prints); built once
# per machine, again when its Dockerfile or entrypoint changes.
standin() {
  local tag=$1 name=$2 prepare=$3
  local sum
  sum=$(cat "scripts/compose/$name.Dockerfile" scripts/compose/*.sh | sha256sum | cut -c1-16)
  [ "$(podman image inspect --format '{{ index .Labels "ndas.stand-in" }}' "$tag" 2>/dev/null)" = "$sum" ] && return
  local context
  context=$(mktemp -d)
  cp "scripts/compose/$name.Dockerfile" scripts/compose/*.sh "$context/"
  local args
  args=$("$prepare" "$context")
  # shellcheck disable=SC2086
  podman build -q --format docker --label "ndas.stand-in=$sum" $args \
    -f "$context/$name.Dockerfile" -t "$tag" "$context" >/dev/null
  rm -rf "$context"
}
bitcoind_context() {
  bash scripts/install-core.sh >/dev/null
  local core
  core=$(ls -d "$HOME"/.cache/ndas/core-*-zmq-ipc/bin | head -1)
  mkdir -p "$1/bin"
  cp "$core/bitcoind" "$core/bitcoin-cli" "$1/bin/"
  libs "$1/lib" "$core/bitcoind" "$core/bitcoin-cli"
}
prometheus_context() {
  need prometheus prometheus
  mkdir -p "$1/bin"
  cp /usr/bin/prometheus "$1/bin/"
  libs "$1/lib" /usr/bin/prometheus
}
postgres_context() {
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need initdb postgresql
  local version
  version=$(ls /usr/lib/postgresql | sort -n | tail -1)
  cp -r "/usr/lib/postgresql/$version" "$1/pg"
  cp -r "/usr/share/postgresql/$version" "$1/share"
  libs "$1/lib" "$1"/pg/bin/* "$1"/pg/lib/*.so
  echo "--build-arg PG_VERSION=$version"
}
standin docker.io/bitcoin/bitcoin:28.1 bitcoind bitcoind_context
standin docker.io/prom/prometheus:v2.55.1 prometheus prometheus_context
standin docker.io/library/postgres:17.2-bookworm postgres postgres_context

# NDAS: the runtime stage of deploy/Dockerfile around the host's binary
# (NDAS_BIN, as the tests give theirs, else a release build).
binary="${NDAS_BIN:-}"
if [ -z "$binary" ]; then
  cargo build --release --bin ndas -q
  binary=target/release/ndas
fi
context=$(mktemp -d)
mkdir -p "$context/target/release" "$context/config"
cp "$binary" "$context/target/release/ndas"
cp config/ndas.toml "$context/config/"
podman build -q --format docker -f deploy/Dockerfile --build-arg NDAS_BINARY=host \
  -t localhost/ndas:local "$context" >/dev/null
rm -rf "$context"

# The stack, as an operator runs it (README), in its own folder.
mkdir -p "$stack/deploy"
cp docker-compose.yml "$stack/"
cp -r deploy/compose-init.sh deploy/prometheus.yml deploy/prometheus-alerts.yml deploy/grafana deploy/postgres "$stack/deploy/"
cd "$stack"
bash deploy/compose-init.sh >/dev/null
docker-compose up -d --no-build bitcoind postgres ndas prometheus
echo "DOCKER_HOST=$DOCKER_HOST"
echo "CONTAINERS_CONF=$CONTAINERS_CONF"
