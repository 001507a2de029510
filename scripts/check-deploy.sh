#!/usr/bin/env bash
# Checks the deployment files with what runs without a Docker engine or a
# cluster: `docker-compose config` on a stack prepared by compose-init.sh,
# promtool on the Prometheus config and alert rules (with their unit tests),
# and Kubernetes schema validation of deploy/k8s. Installs the tools if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${DEPLOY_TOOLS_DIR:-$HOME/.cache/ndas/tools}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v docker-compose >/dev/null; then
  as_root apt-get update -qq && as_root apt-get install -y -qq docker-compose >/dev/null
fi
if ! command -v promtool >/dev/null; then
  # Debian's prometheus package carries promtool; its service is not started here.
  as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
if [ ! -x "$tools/venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet "kubernetes-validate==1.37.0"
fi

# Compose: the file as an operator gets it after deploy/compose-init.sh.
stack=$(mktemp -d)
trap 'rm -rf "$stack"' EXIT
cp docker-compose.yml "$stack/"
mkdir -p "$stack/deploy"
cp deploy/compose-init.sh deploy/prometheus.yml "$stack/deploy/"
cp -r deploy/postgres "$stack/deploy/"
cp -r deploy/grafana "$stack/deploy/"
(cd "$stack" && bash deploy/compose-init.sh >/dev/null)
for file in .env deploy/utek/utek_v26.conf deploy/utek/metadata.json deploy/secrets/database_url; do
  [ -s "$stack/$file" ] || { echo "compose-init.sh did not write $file" >&2; exit 1; }
done
(cd "$stack" && docker-compose -f docker-compose.yml config -q)
echo "docker-compose config: ok"

# Prometheus: the config as Compose mounts it, the rules, and the rules' tests.
sed "s|/etc/prometheus/alerts.yml|$PWD/deploy/prometheus-alerts.yml|" deploy/prometheus.yml > "$stack/prometheus.yml"
promtool check config --lint=all "$stack/prometheus.yml" >/dev/null
promtool test rules deploy/prometheus-alerts.test.yml >/dev/null
echo "promtool: ok"

# Kubernetes: every manifest against the API schemas (the ServiceMonitor CRD has none bundled).
manifests=$(ls deploy/k8s/*.yaml | grep -v kustomization.yaml)
# shellcheck disable=SC2086
"$tools/venv/bin/kubernetes-validate" --strict --quiet $manifests
echo "kubernetes-validate: ok"
