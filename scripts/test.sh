#!/usr/bin/env bash
# Run the test suite in the project's venv. Extra arguments go to pytest, e.g.:
#   bash scripts/test.sh -m "not slow and not infra"     (the quick subset)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$(bash "$ROOT/scripts/bootstrap.sh" | tail -n 1)"
cd "$ROOT"
exec "$VENV/bin/python" -m pytest "$@"
