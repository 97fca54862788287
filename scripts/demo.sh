#!/usr/bin/env bash
# Set up a virtual environment and retouch the shipped demo clip with the shipped default
# weights, writing a side-by-side before/after video. Nothing is downloaded at run time.
# Usage: bash scripts/demo.sh [extra `vretouch run` options...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e .
exec .venv/bin/vretouch run examples/demo_talking.mp4 -o demo_retouched.mp4 --compare --overwrite "$@"
