#!/usr/bin/env bash
# Start/stop the real components tests use:  bash scripts/services.sh up [pg] | down | env
# (only PostgreSQL in this build; each component has its own script under scripts/).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
cmd="${1:-}"; shift || true
want=("$@"); [ ${#want[@]} -eq 0 ] && want=(pg)
case "$cmd" in
  up) for c in "${want[@]}"; do case "$c" in pg) bash "$HERE/postgres.sh" start ;; *) echo "unknown component $c" >&2; exit 2 ;; esac; done ;;
  down) bash "$HERE/postgres.sh" stop ;;
  env) bash "$HERE/postgres.sh" env ;;
  *) echo "usage: $0 up [pg] | down | env" >&2; exit 2 ;;
esac
