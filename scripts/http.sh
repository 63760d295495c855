#!/usr/bin/env bash
# A local HTTP file server on 127.0.0.1 for the http_pull connector: scripts/httpfiles.py (standard library only).
#   bash scripts/http.sh install|start|stop|status|env
#   port      FLOW_BEAM_HTTP_PORT (default 19580)
#   folder    FLOW_BEAM_HTTP_ROOT (default $STATE/root): the files served, with HTML/JSON listings of folders
#   options   FLOW_BEAM_HTTP_TOKEN (bearer token every request must carry; passed by environment, never argv),
#             FLOW_BEAM_HTTP_PAGE_SIZE (listing entries per ?page=, 0 = one page), FLOW_BEAM_HTTP_FAIL_FIRST (the
#             first N requests get 503), FLOW_BEAM_HTTP_REDIRECT_TO (302 everything to that origin),
#             FLOW_BEAM_HTTP_RECORD (file: one JSON line per request with its headers). See httpfiles.py.
#   python    FLOW_BEAM_SERVER_PYTHON, else python3 (3.10+; nothing to install)
#   state     $FLOW_BEAM_STATE/http (default ~/.cache/flow-beam/run/http): http.pid, server.log, root/
# Run a second one (another origin) with another FLOW_BEAM_STATE and port.
# Measured here (2 cores): install 0 s (standard library); start ~1.9 s; stop ~1.7 s; disk 0.
set -euo pipefail
# shellcheck disable=SC2034  # read by lib/common.sh
FB_COMPONENT=http
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
# shellcheck source=lib/server.sh
. "$HERE/lib/server.sh"

PORT="${FLOW_BEAM_HTTP_PORT:-19580}"
STATE="$FB_STATE_ROOT/http"
ROOT="${FLOW_BEAM_HTTP_ROOT:-$STATE/root}"
PIDFILE="$STATE/http.pid"
LOG="$STATE/server.log"
MARKER="httpfiles.py"
TIMEOUT="${FLOW_BEAM_START_TIMEOUT:-20}"
WHAT="HTTP file server on 127.0.0.1:$PORT (root $ROOT)"
PY="${FLOW_BEAM_SERVER_PYTHON:-python3}"

install() {
  command -v "$PY" >/dev/null 2>&1 || fb_die "no $PY on PATH (set FLOW_BEAM_SERVER_PYTHON)"
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || fb_die "$PY is older than Python 3.10"
}

launch() {
  local args=(--port "$PORT" --root "$ROOT" --page-size "${FLOW_BEAM_HTTP_PAGE_SIZE:-0}"
              --fail-first "${FLOW_BEAM_HTTP_FAIL_FIRST:-0}")
  [ -z "${FLOW_BEAM_HTTP_TOKEN:-}" ] || args+=(--token-env FLOW_BEAM_HTTP_TOKEN)
  [ -z "${FLOW_BEAM_HTTP_REDIRECT_TO:-}" ] || args+=(--redirect-to "$FLOW_BEAM_HTTP_REDIRECT_TO")
  [ -z "${FLOW_BEAM_HTTP_RECORD:-}" ] || args+=(--record "$FLOW_BEAM_HTTP_RECORD")
  mkdir -p "$ROOT"
  fb_spawn "$PIDFILE" "$LOG" "$PY" -u "$HERE/$MARKER" "${args[@]}"
}

# the server printed its banner and the port accepts connections (a request would use up --fail-first)
answers() { fb_port_open "$PORT" && grep -q "httpfiles: serving" "$LOG" 2>/dev/null; }

env_lines() {
  echo "export FLOW_BEAM_HTTP_URL=http://127.0.0.1:$PORT/"
  echo "export FLOW_BEAM_HTTP_ROOT=$ROOT"
  [ -z "${FLOW_BEAM_HTTP_TOKEN:-}" ] || echo "export FLOW_BEAM_HTTP_TOKEN='$FLOW_BEAM_HTTP_TOKEN'"
}

fb_server_main "$@"
