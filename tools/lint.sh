#!/usr/bin/env bash
# The checks a maintainer runs before review (settings in setup.cfg):
# flake8, isort and yapf, over the Python code of the repository.
#
#   bash tools/lint.sh         # check only; exit 1 on a finding
#   bash tools/lint.sh --fix   # sort the imports and format in place
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
PATHS=(mmal tools tests configs setup.py)
if [ "${1:-}" = "--fix" ]; then
    "$PY" -m isort -q "${PATHS[@]}"
    "$PY" -m yapf -i -r "${PATHS[@]}"
fi
"$PY" -m flake8 "${PATHS[@]}"
"$PY" -m isort --check-only --diff -q "${PATHS[@]}"
"$PY" -m yapf --diff -r "${PATHS[@]}"
echo "lint: flake8, isort and yapf found nothing"
