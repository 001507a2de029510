#!/usr/bin/env bash
# docker-compose.yml run for real, on this machine's own engine: Debian's
# podman serving the Docker API on a socket, driven by Debian's
# docker-compose. No image registry is reachable here, so the images are
# made locally and tagged with the names the compose file uses:
#   - debian:bookworm-slim from debootstrap (cached outside the clone);
#   - ndas:local from deploy/Dockerfile's runtime stage, around a binary
#     built on the host (no Rust toolchain image can be had);
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
# Runs as root on a Debian 12 host: the stand-ins carry this host's
# binaries and their libraries onto a Debian 12 base. One stack at a time
# per machine (the compose file publishes fixed ports).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
root=$PWD
cache="${NDAS_COMPOSE_CACHE:-$HOME/.cache/ndas/compose}"
mkdir -p "$cache"
action="${1:?up DIR or down DIR}"
stack="${2:?a folder for the stack}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need() {
  command -v "$1" >/dev/null && return
  # shellcheck disable=SC2086
  as_root apt-get update -qq && as_root apt-get install -y -qq $2 >/dev/null
}
. /etc/os-release
if [ "${VERSION_CODENAME:-}" != bookworm ]; then
  echo "the stand-in images carry this host's binaries onto Debian 12 (bookworm); this host is ${PRETTY_NAME:-unknown}" >&2
  exit 1
fi
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

# The engines serving this socket (by their command line: never another).
engines() {
  local pid
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    [ "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" = "podman system service --time=0 unix://$sock " ] && echo "$pid"
  done
  return 0
}

if [ "$action" = down ]; then
  if [ -f "$stack/docker-compose.yml" ]; then
    (cd "$stack" && docker-compose down -v --remove-orphans --timeout 30) || true
  fi
  for pid in $(engines); do kill "$pid"; done
  rm -f "$sock"
  exit 0
fi

# The engine, started here and stopped by `down` (by its PID).
if ! ping; then
  rm -f "$sock"
  podman system service --time=0 "unix://$sock" >"$cache/engine.log" 2>&1 &
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
# context `prepare` fills (its build arguments in `build-args`); built
# again when the Dockerfiles, the entrypoints or what goes in change.
standin() {
  local tag=$1 name=$2 prepare=$3
  local context sum
  context=$(mktemp -d)
  cp "scripts/compose/$name.Dockerfile" scripts/compose/*.sh "$context/"
  touch "$context/build-args"
  "$prepare" "$context"
  sum=$( (cd "$context" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16)
  if [ "$(podman image inspect --format '{{ index .Labels "ndas.stand-in" }}' "$tag" 2>/dev/null || true)" != "$sum" ]; then
    # shellcheck disable=SC2046
    podman build -q --format docker --label "ndas.stand-in=$sum" $(cat "$context/build-args") \
      -f "$context/$name.Dockerfile" -t "$tag" "$context" >/dev/null
  fi
  rm -rf "$context"
}
bitcoind_context() {
  local core
  core=$(bash scripts/install-core.sh | sed -n 's/^bitcoin core: //p' | tail -1)
  [ -x "$core/bitcoind" ] || { echo "install-core.sh gave no bitcoind" >&2; exit 1; }
  mkdir -p "$1/bin"
  cp "$core/bitcoind" "$core/bitcoin-cli" "$1/bin/"
  libs "$1/lib" "$core/bitcoind" "$core/bitcoin-cli"
}
prometheus_context() {
  need prometheus "prometheus --no-install-recommends"
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
  echo "--build-arg PG_VERSION=$version" > "$1/build-args"
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
# The build stage replaced by one holding that binary where the runtime
# stage takes it from; the runtime stage itself is deploy/Dockerfile's.
context=$(mktemp -d)
mkdir -p "$context/config"
cp "$binary" "$context/ndas"
cp config/ndas.toml "$context/config/"
{
  printf 'FROM %s AS build\nCOPY ndas /out/ndas\n\n' "$base"
  sed -n '/^FROM debian:bookworm-slim$/,$p' deploy/Dockerfile
} > "$context/Dockerfile"
grep -q '^COPY --from=build /out/ndas ' "$context/Dockerfile" \
  || { echo "deploy/Dockerfile's runtime stage no longer takes /out/ndas from the build stage" >&2; exit 1; }
podman build -q --format docker -t localhost/ndas:local "$context" >/dev/null
rm -rf "$context"

# The stack, as an operator runs it (README), in its own folder (its name
# is the compose project's: volumes left by a killed run are another's).
mkdir -p "$stack/deploy"
cp docker-compose.yml "$stack/"
cp -r deploy/compose-init.sh deploy/prometheus.yml deploy/prometheus-alerts.yml deploy/grafana deploy/postgres "$stack/deploy/"
cd "$stack"
bash deploy/compose-init.sh >/dev/null
docker-compose up -d --no-build bitcoind postgres ndas prometheus
echo "DOCKER_HOST=$DOCKER_HOST"
echo "CONTAINERS_CONF=$CONTAINERS_CONF"
