#!/usr/bin/env bash
# Pub/Sub for development and tests on 127.0.0.1: Google's Pub/Sub emulator (the machine image's Debian package
# google-cloud-cli-pubsub-emulator, a Java 17 server found under the Cloud SDK root), or — only where it is
# missing, or when FLOW_BEAM_PUBSUB_IMPL=standin — the in-repo stand-in scripts/pubsub_emulator.py (an in-memory
# gRPC server written in this repo). `env` says which one runs (FLOW_BEAM_PUBSUB_KIND=google|standin); the
# google-cloud-pubsub client uses either through PUBSUB_EMULATOR_HOST.
#   bash scripts/pubsub.sh start|stop|status|env
#   port      FLOW_BEAM_PUBSUB_PORT (default 8681)
#   emulator  FLOW_BEAM_PUBSUB_EMULATOR=/path/to/cloud-pubsub-emulator, else found through
#             `gcloud info` (…/platform/pubsub-emulator/bin/cloud-pubsub-emulator); Google's apt source is not
#             reachable here, so the script cannot install it: it says so and uses the stand-in
#   python    (stand-in only) FLOW_BEAM_PYTHON, else $FLOW_BEAM_VENV/bin/python, else python3
#   state     $FLOW_BEAM_STATE/pubsub (default ~/.cache/flow-beam/run/pubsub): pubsub.pid, kind, server.log
# Messages live in memory only: stop (or a crash) forgets every topic, subscription and message.
# Measured here: the emulator answers ~6 s after start (JVM start-up); the stand-in ~1 s.
set -euo pipefail
# shellcheck disable=SC2034  # read by lib/common.sh
FB_COMPONENT=pubsub
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"

PORT="${FLOW_BEAM_PUBSUB_PORT:-8681}"
STATE="$FB_STATE_ROOT/pubsub"
PIDFILE="$STATE/pubsub.pid"
KINDFILE="$STATE/kind"
LOG="$STATE/server.log"
TIMEOUT="${FLOW_BEAM_START_TIMEOUT:-60}"

# Google's emulator launcher, or nothing
google_emulator() {
  local root cand
  if [ -n "${FLOW_BEAM_PUBSUB_EMULATOR:-}" ]; then echo "$FLOW_BEAM_PUBSUB_EMULATOR"; return; fi
  root="$(gcloud info --format='value(installation.sdk_root)' 2>/dev/null || true)"
  for cand in "$root/platform/pubsub-emulator/bin/cloud-pubsub-emulator" \
              /usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator; do
    if [ -n "$cand" ] && [ -x "$cand" ]; then echo "$cand"; return; fi
  done
}

# google | standin: what `start` runs now
wanted_kind() {
  if [ "${FLOW_BEAM_PUBSUB_IMPL:-}" = standin ]; then echo standin; return; fi
  if [ -n "$(google_emulator)" ] && command -v java >/dev/null 2>&1; then echo google; else echo standin; fi
}

# the kind that runs (recorded at start)
kind() { cat "$KINDFILE" 2>/dev/null || wanted_kind; }

# the marker of the server that runs (either kind: a state folder from before the kind file existed too)
marker() {
  local m
  for m in pubsub-emulator pubsub_emulator.py; do
    if fb_pid_alive "$PIDFILE" "$m" >/dev/null; then echo "$m"; return; fi
  done
  if [ "$(kind)" = google ]; then echo "pubsub-emulator"; else echo "pubsub_emulator.py"; fi
}

python_bin() {
  if [ -n "${FLOW_BEAM_PYTHON:-}" ]; then echo "$FLOW_BEAM_PYTHON"
  elif [ -x "${FLOW_BEAM_VENV:-$HERE/../.venv}/bin/python" ]; then echo "${FLOW_BEAM_VENV:-$HERE/../.venv}/bin/python"
  else command -v python3 || fb_die "no python3 on PATH (set FLOW_BEAM_PYTHON)"
  fi
}

answers() { fb_port_open "$PORT"; }

running() { fb_pid_alive "$PIDFILE" "$(marker)" >/dev/null; }

start() {
  if running && answers; then fb_log "already running on 127.0.0.1:$PORT ($(kind))"; return 0; fi
  if running; then
    # started by an earlier call that has not finished booting: wait for it
    fb_wait_for "$TIMEOUT" "$PIDFILE" "$(marker)" "$LOG" "Pub/Sub ($(kind)) on 127.0.0.1:$PORT" answers
    fb_log "running on 127.0.0.1:$PORT ($(kind))"; return 0
  fi
  fb_port_open "$PORT" && fb_die "port 127.0.0.1:$PORT is already in use by another process; stop it or set FLOW_BEAM_PUBSUB_PORT"
  mkdir -p "$STATE"
  : >"$LOG.tmp" && mv "$LOG.tmp" "$LOG"  # fresh log per start
  local k emu py
  k="$(wanted_kind)"
  if [ "$k" = google ]; then
    emu="$(google_emulator)"
    echo google >"$KINDFILE"
    fb_spawn "$PIDFILE" "$LOG" "$emu" --host=127.0.0.1 --port="$PORT"
  else
    [ "${FLOW_BEAM_PUBSUB_IMPL:-}" = standin ] \
      || fb_log "WARNING: Google's Pub/Sub emulator is not on this machine (Debian package google-cloud-cli-pubsub-emulator, or set FLOW_BEAM_PUBSUB_EMULATOR); using the in-repo stand-in"
    py="$(python_bin)"
    "$py" -c "import grpc, google.pubsub_v1" 2>/dev/null \
      || fb_die "$py cannot import grpc and google.pubsub_v1: install google-cloud-pubsub (bash scripts/bootstrap.sh)"
    echo standin >"$KINDFILE"
    fb_spawn "$PIDFILE" "$LOG" "$py" -u "$HERE/pubsub_emulator.py" --port "$PORT"
  fi
  fb_wait_for "$TIMEOUT" "$PIDFILE" "$(marker)" "$LOG" "Pub/Sub ($k) on 127.0.0.1:$PORT" answers
  fb_log "running on 127.0.0.1:$PORT ($k, log $LOG)"
}

stop() {
  if running; then
    fb_kill_group "$PIDFILE" "$(marker)" 15
    fb_log "stopped"
  else
    rm -f "$PIDFILE"
    fb_log "not running"
  fi
  rm -f "$KINDFILE"
}

status() {
  if running && answers; then
    echo "pubsub: running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"); $(kind))"
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
  env) printf 'export PUBSUB_EMULATOR_HOST=127.0.0.1:%s\nexport FLOW_BEAM_PUBSUB=127.0.0.1:%s\nexport FLOW_BEAM_PUBSUB_KIND=%s\n' "$PORT" "$PORT" "$(kind)" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
