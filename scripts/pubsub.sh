#!/usr/bin/env bash
# A Pub/Sub stand-in on 127.0.0.1: scripts/pubsub_emulator.py, an in-memory gRPC server written in this repo
# (NOT Google's emulator, which needs gcloud; see its docstring for what it implements). The google-cloud-pubsub
# client uses it when PUBSUB_EMULATOR_HOST is set.
#   bash scripts/pubsub.sh start|stop|status|env
#   port      FLOW_BEAM_PUBSUB_PORT (default 8681)
#   python    FLOW_BEAM_PYTHON, else $FLOW_BEAM_VENV/bin/python (default: the repo's .venv, see bootstrap.sh),
#             else python3; it needs google-cloud-pubsub (a flow-beam dependency)
#   state     $FLOW_BEAM_STATE/pubsub (default ~/.cache/flow-beam/run/pubsub): pubsub.pid, server.log
# Messages live in memory only: stop (or a crash) forgets every topic, subscription and message.
set -euo pipefail
# shellcheck disable=SC2034  # read by lib/common.sh
FB_COMPONENT=pubsub
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"

PORT="${FLOW_BEAM_PUBSUB_PORT:-8681}"
STATE="$FB_STATE_ROOT/pubsub"
PIDFILE="$STATE/pubsub.pid"
LOG="$STATE/server.log"
MARKER="pubsub_emulator.py"
TIMEOUT="${FLOW_BEAM_START_TIMEOUT:-30}"

python_bin() {
  if [ -n "${FLOW_BEAM_PYTHON:-}" ]; then echo "$FLOW_BEAM_PYTHON"
  elif [ -x "${FLOW_BEAM_VENV:-$HERE/../.venv}/bin/python" ]; then echo "${FLOW_BEAM_VENV:-$HERE/../.venv}/bin/python"
  else command -v python3 || fb_die "no python3 on PATH (set FLOW_BEAM_PYTHON)"
  fi
}

answers() { fb_port_open "$PORT"; }

running() { fb_pid_alive "$PIDFILE" "$MARKER" >/dev/null; }

start() {
  if running && answers; then fb_log "already running on 127.0.0.1:$PORT"; return 0; fi
  if running; then
    # started by an earlier call that has not finished booting: wait for it
    fb_wait_for "$TIMEOUT" "$PIDFILE" "$MARKER" "$LOG" "Pub/Sub stand-in on 127.0.0.1:$PORT" answers
    fb_log "running on 127.0.0.1:$PORT"; return 0
  fi
  fb_port_open "$PORT" && fb_die "port 127.0.0.1:$PORT is already in use by another process; stop it or set FLOW_BEAM_PUBSUB_PORT"
  local py
  py="$(python_bin)"
  "$py" -c "import grpc, google.pubsub_v1" 2>/dev/null \
    || fb_die "$py cannot import grpc and google.pubsub_v1: install google-cloud-pubsub (bash scripts/bootstrap.sh)"
  mkdir -p "$STATE"
  : >"$LOG.tmp" && mv "$LOG.tmp" "$LOG"  # fresh log per start
  fb_spawn "$PIDFILE" "$LOG" "$py" -u "$HERE/$MARKER" --port "$PORT"
  fb_wait_for "$TIMEOUT" "$PIDFILE" "$MARKER" "$LOG" "Pub/Sub stand-in on 127.0.0.1:$PORT" answers
  fb_log "running on 127.0.0.1:$PORT (in-repo stand-in, log $LOG)"
}

stop() {
  if running; then
    fb_kill_group "$PIDFILE" "$MARKER" 15
    fb_log "stopped"
  else
    rm -f "$PIDFILE"
    fb_log "not running"
  fi
}

status() {
  if running && answers; then
    echo "pubsub: running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"); in-repo stand-in)"
  elif running; then
    echo "pubsub: process running (pid $(cat "$PIDFILE")) but not answering on 127.0.0.1:$PORT"; return 1
  else
    echo "pubsub: stopped"; return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) printf 'export PUBSUB_EMULATOR_HOST=127.0.0.1:%s\nexport FLOW_BEAM_PUBSUB=127.0.0.1:%s\n' "$PORT" "$PORT" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
