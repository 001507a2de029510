#!/usr/bin/env bash
# Checks the deployment files with what runs without a Docker engine or a
# cluster: `docker-compose config` on a stack prepared by compose-init.sh, and
# Kubernetes schema validation of deploy/k8s. Installs both tools if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${DEPLOY_TOOLS_DIR:-$HOME/.cache/ndas/tools}"

if ! command -v docker-compose >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq docker-compose >/dev/null
  fi
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
cp -r deploy/grafana "$stack/deploy/"
(cd "$stack" && bash deploy/compose-init.sh >/dev/null)
for file in .env deploy/utek/utek_v26.conf deploy/utek/metadata.json; do
  [ -s "$stack/$file" ] || { echo "compose-init.sh did not write $file" >&2; exit 1; }
done
(cd "$stack" && docker-compose -f docker-compose.yml config -q)
echo "docker-compose config: ok"

# Kubernetes: every manifest against the API schemas (the ServiceMonitor CRD has none bundled).
manifests=$(ls deploy/k8s/*.yaml | grep -v kustomization.yaml)
# shellcheck disable=SC2086
"$tools/venv/bin/kubernetes-validate" --strict --quiet $manifests
echo "kubernetes-validate: ok"
