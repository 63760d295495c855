# shellcheck shell=bash
# One lifecycle for the local servers of the remote connectors (scripts/{s3,gcs,azurite,sftp,ftp,kinesis,http}.sh).
# Source it after lib/common.sh. The sourcing script defines:
#   PORT STATE PIDFILE LOG MARKER TIMEOUT WHAT(e.g. "moto S3 on 127.0.0.1:19500")
#   install()     fetch/build into $FB_CACHE (idempotent, quick when done)
#   launch()      fb_spawn "$PIDFILE" "$LOG" <command...>   (state folders are created before)
#   answers()     true once the server answers a real request
#   env_lines()   the export lines `env` prints
#   ports_in_use() (optional) the extra ports `start` checks are free (default: none)
# and then calls:  fb_server_main "$@"
# start: install, refuse a port in use by something else, spawn, wait for an answer (fb_wait_for prints the log on
# failure); start when already running is a no-op. stop: TERM the whole process group, KILL after a grace time.
# status: exit 0 only when the process lives and answers.

fb_running() { fb_pid_alive "$PIDFILE" "$MARKER" >/dev/null; }

ports_in_use() { :; }

fb_server_start() {
  install
  if fb_running && answers; then fb_log "already running: $WHAT"; return 0; fi
  if fb_running; then
    fb_wait_for "$TIMEOUT" "$PIDFILE" "$MARKER" "$LOG" "$WHAT" answers
    fb_log "running: $WHAT"; return 0
  fi
  local p
  for p in "$PORT" $(ports_in_use); do
    fb_port_open "$p" && fb_die "port 127.0.0.1:$p is already in use by another process; stop it or choose another port (see the top of $0)"
  done
  mkdir -p "$STATE"
  : >"$LOG.tmp" && mv "$LOG.tmp" "$LOG"  # fresh log per start
  launch
  fb_wait_for "$TIMEOUT" "$PIDFILE" "$MARKER" "$LOG" "$WHAT" answers
  fb_log "running: $WHAT (state $STATE, log $LOG)"
}

fb_server_stop() {
  if fb_running; then
    fb_kill_group "$PIDFILE" "$MARKER" "${STOP_TIMEOUT:-15}"
    fb_log "stopped"
  else
    rm -f "$PIDFILE"
    fb_log "not running"
  fi
}

fb_server_status() {
  if fb_running && answers; then
    echo "$FB_COMPONENT: running: $WHAT (pid $(cat "$PIDFILE"))"
  elif fb_running; then
    echo "$FB_COMPONENT: process running (pid $(cat "$PIDFILE")) but not answering: $WHAT"; return 1
  else
    echo "$FB_COMPONENT: stopped"; return 1
  fi
}

# A Python venv under the cache holding PIP_SPECS (rebuilt when the specs change), so the project venv stays lean.
#   fb_venv DIR SPEC...   (python: FLOW_BEAM_SERVER_PYTHON, else python3)
fb_venv() {
  local dir="$1"; shift
  local want="$*" py="${FLOW_BEAM_SERVER_PYTHON:-python3}"
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.complete" 2>/dev/null)" = "$want" ]; then return 0; fi
  command -v "$py" >/dev/null 2>&1 || fb_die "no $py on PATH to make the venv $dir (set FLOW_BEAM_SERVER_PYTHON)"
  "$py" -c "import venv, ensurepip" 2>/dev/null || fb_die "$py has no venv/ensurepip module (Debian: apt-get install python3-venv)"
  mkdir -p "$STATE"
  fb_log "making $dir with: $want (log $STATE/install.log)"
  rm -rf "$dir"
  if ! { "$py" -m venv "$dir" && "$dir/bin/pip" install -q --disable-pip-version-check "$@"; } >"$STATE/install.log" 2>&1; then
    echo "[$FB_COMPONENT] ERROR: pip could not install $want into $dir" >&2
    fb_tail_log "$STATE/install.log"
    rm -rf "$dir"
    exit 1
  fi
  echo "$want" >"$dir/.complete"
}

# An npm package installed under the cache (npm install --prefix DIR SPEC), redone when SPEC changes.
fb_npm() {
  local dir="$1" spec="$2"
  if [ "$(cat "$dir/.complete" 2>/dev/null)" = "$spec" ]; then return 0; fi
  command -v npm >/dev/null 2>&1 || fb_die "npm is not on PATH (Debian: apt-get install nodejs npm; Node >= 18)"
  mkdir -p "$STATE"
  fb_log "npm install $spec into $dir (log $STATE/install.log)"
  rm -rf "$dir"
  mkdir -p "$dir"
  if ! npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "$spec" >"$STATE/install.log" 2>&1; then
    echo "[$FB_COMPONENT] ERROR: npm install $spec failed" >&2
    fb_tail_log "$STATE/install.log"
    exit 1
  fi
  echo "$spec" >"$dir/.complete"
}

# An HTTP request to 127.0.0.1 answers (any status): curl when present, else bash's /dev/tcp.
fb_http_answers() {
  local port="$1" path="${2:-/}"
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -m 5 "http://127.0.0.1:$port$path"
  else
    fb_port_open "$port"
  fi
}

fb_server_main() {
  case "${1:-}" in
    install) install ;;
    start) fb_server_start ;;
    stop) fb_server_stop ;;
    status) fb_server_status ;;
    env) env_lines ;;
    *) fb_usage ;;
  esac
}
