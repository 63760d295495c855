#!/usr/bin/env bash
# Set up and run the test suite. Brings up the real components the tests use (scripts/services.sh: PostgreSQL,
# Kafka, Prism, the Pub/Sub emulator), stops what it started when done. FLOW_BEAM_NO_SERVICES=1 skips that (those tests then skip,
# saying why). Extra arguments go to pytest, e.g. the quick subset:
#   FLOW_BEAM_NO_SERVICES=1 bash scripts/test.sh -m "not infra and not slow"
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$(bash "$ROOT/scripts/bootstrap.sh" | tail -n 1)"
cd "$ROOT"
if [ "${FLOW_BEAM_NO_SERVICES:-}" != "1" ]; then
  trap 'bash "$ROOT/scripts/services.sh" down || true' EXIT
  bash "$ROOT/scripts/services.sh" up
  eval "$(bash "$ROOT/scripts/services.sh" env)"
fi
"$VENV/bin/python" -m pytest "$@"
