#!/usr/bin/env bash
# Create the project's virtualenv and install flow-beam (editable) with its test extras.
# Usage: bash scripts/bootstrap.sh [--fresh]      (venv: $FLOW_BEAM_VENV, default ./.venv)
# Cold install ~30 s and ~550 MB (apache-beam dominates); pip's cache makes repeat installs fast.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${FLOW_BEAM_VENV:-$PWD/.venv}"
if [ "${1:-}" = "--fresh" ]; then rm -rf "$VENV"; fi
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip setuptools wheel
fi
if ! "$VENV/bin/python" -c "import flow_beam, pytest, hypothesis" 2>/dev/null \
   || [ setup.py -nt "$VENV/.flow-beam-installed" ]; then
  "$VENV/bin/pip" install -q -e ".[test]"
  touch "$VENV/.flow-beam-installed"
fi
echo "$VENV"
