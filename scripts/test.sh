#!/usr/bin/env bash
# Set up and run the test suite. Starts the PostgreSQL test server (scripts/postgres.sh) when it is not running
# and stops it afterwards; FLOW_BEAM_NO_SERVICES=1 skips that (the PostgreSQL tests then skip, saying why).
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -m "not slow and not infra"   (the quick subset)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$(bash "$ROOT/scripts/bootstrap.sh" | tail -n 1)"
cd "$ROOT"
if [ -z "${FLOW_BEAM_PG_URL:-}" ] && [ "${FLOW_BEAM_NO_SERVICES:-}" != "1" ]; then
  if ! bash "$ROOT/scripts/postgres.sh" status >/dev/null 2>&1; then
    if bash "$ROOT/scripts/postgres.sh" start >/dev/null; then
      trap 'bash "$ROOT/scripts/postgres.sh" stop || true' EXIT
    else
      echo "warning: PostgreSQL could not start; its tests will skip" >&2
    fi
  fi
  bash "$ROOT/scripts/postgres.sh" status >/dev/null 2>&1 && eval "$(bash "$ROOT/scripts/postgres.sh" env)"
fi
"$VENV/bin/python" -m pytest "$@"
