# shellcheck shell=bash disable=SC2034
# Shared helpers for scripts/{postgres,kafka,flink,prism,services}.sh. Source it; do not run it.
#   FLOW_BEAM_CACHE  downloads and tools       (default ~/.cache/flow-beam)
#   FLOW_BEAM_STATE  runtime state root; each component uses $FLOW_BEAM_STATE/<component>
#                    (data dirs, pid files, logs; default $FLOW_BEAM_CACHE/run)
#   FLOW_BEAM_START_TIMEOUT  seconds `start` waits for a component to answer (default per component)

FB_CACHE="${FLOW_BEAM_CACHE:-$HOME/.cache/flow-beam}"
FB_STATE_ROOT="${FLOW_BEAM_STATE:-$FB_CACHE/run}"

fb_log() { echo "[$FB_COMPONENT] $*" >&2; }
fb_die() { echo "[$FB_COMPONENT] ERROR: $*" >&2; exit 1; }

# Last 30 lines of a log file, to stderr (used on every failed start).
fb_tail_log() {
  local f="$1"
  if [ -f "$f" ]; then
    echo "---- last 30 lines of $f ----" >&2
    tail -n 30 "$f" >&2 || true
    echo "---- end of $f ----" >&2
  else
    echo "(no log file at $f)" >&2
  fi
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
fb_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# PID from a pid file when that process is still alive (and, if given, its command line contains MARKER).
fb_pid_alive() {
  local pidfile="$1" marker="${2:-}" pid
  [ -f "$pidfile" ] || return 1
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  if [ -n "$marker" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker"; then
    return 1  # pid was reused by an unrelated process
  fi
  echo "$pid"
}

# Start a command detached in its own session (so stop can signal the whole process group);
# stdout+stderr go to LOG, the pid (= process group id) to PIDFILE.
fb_spawn() {
  local pidfile="$1" log="$2"; shift 2
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$log")"
  setsid "$@" </dev/null >>"$log" 2>&1 &
  echo $! >"$pidfile"
}

# Stop the process group started by fb_spawn: TERM, wait up to TIMEOUT s, then KILL. Removes the pid file.
fb_kill_group() {
  local pidfile="$1" marker="${2:-}" timeout="${3:-30}" pid i
  if pid="$(fb_pid_alive "$pidfile" "$marker")"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 5; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      fb_log "pid $pid did not exit after ${timeout}s; sending KILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    # children that outlived the leader (same process group)
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# Wait up to TIMEOUT seconds for CHECK (a shell function/command) to succeed while PIDFILE's process lives.
# On failure prints REASON and the last 30 log lines, and exits 1.
fb_wait_for() {
  local timeout="$1" pidfile="$2" marker="$3" log="$4" what="$5"; shift 5
  local deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    if "$@"; then return 0; fi
    # liveness by pid only: right after fb_spawn the child may not have exec'd yet (its cmdline is still the
    # shell's, without the marker), which must not read as "exited"
    if ! kill -0 "$(cat "$pidfile" 2>/dev/null || echo 0)" 2>/dev/null; then
      echo "[$FB_COMPONENT] ERROR: $what: the process exited before it answered" >&2
      fb_tail_log "$log"
      rm -f "$pidfile"
      exit 1
    fi
    sleep 0.5
  done
  echo "[$FB_COMPONENT] ERROR: $what: no answer within ${timeout}s (raise FLOW_BEAM_START_TIMEOUT); stopping it" >&2
  fb_tail_log "$log"
  fb_kill_group "$pidfile" "$marker" 10
  exit 1
}

fb_need_java() {
  if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
    fb_log "java/mvn missing: installing Debian's openjdk-17-jdk-headless and maven"
    fb_apt_install openjdk-17-jdk-headless maven
  fi
}

# apt-get update + install PKG... (callers only call this when something is missing).
fb_apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}

fb_usage() {
  echo "usage: $0 install|start|stop|status|env${1:+|$1}" >&2
  exit 2
}
