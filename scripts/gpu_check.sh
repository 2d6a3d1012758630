#!/usr/bin/env bash
# A first GPU run in under 10 minutes that says what breaks (scripts/gpu_check.py --help for what it measures):
#   bash scripts/gpu_check.sh [--cifar ROOT] [--newsgroups ROOT] [--out results/gpu_check]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
exec "$PY" scripts/gpu_check.py "$@"
