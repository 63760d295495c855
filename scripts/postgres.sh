#!/usr/bin/env bash
# PostgreSQL for tests and CI: Debian's `postgresql` package, a private cluster on 127.0.0.1.
#   bash scripts/postgres.sh install|start|stop|status|env
#   port      FLOW_BEAM_PG_PORT (default 54329); trust auth, user postgres
#   state     FLOW_BEAM_PG_STATE if set; else $FLOW_BEAM_STATE/postgres (default ~/.cache/flow-beam/run/postgres)
#             when the server user can reach it (or a cluster already lives there); else, as root with a home the
#             `postgres` user cannot traverse (e.g. /root, mode 700), /var/tmp/flow-beam-pg-<uid>-<port> (owned by
#             postgres, mode 700). Holds data/, server.log and the unix socket.
# The server refuses to run as root, so initdb/pg_ctl run as the `postgres` user. The script never changes the
# permissions of your home or any other folder it did not create: a state folder the server user cannot reach is
# a clear error naming FLOW_BEAM_PG_STATE.
# Measured here (2 cores): first start (initdb) ~1 s; start of an existing cluster ~0.2 s; start when already
# running ~0.05 s; stop ~0.1 s. Cold apt install (update + postgresql) ~40 s (earlier estimate: the package was
# already installed on the machine these scripts were written on).
set -euo pipefail
# shellcheck disable=SC2034  # read by lib/common.sh
FB_COMPONENT=postgres
# shellcheck source=lib/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/common.sh"

PORT="${FLOW_BEAM_PG_PORT:-54329}"
LEGACY_STATE="$FB_STATE_ROOT/postgres"

# True when the postgres user can traverse every existing ancestor of $1 (and $1 itself when it exists).
pg_can_reach() {
  [ "$(id -u)" = 0 ] || return 0
  id -u postgres >/dev/null 2>&1 || return 0  # not installed yet: decided again at start
  local d="" part
  local IFS=/
  for part in $1; do
    [ -n "$part" ] || continue
    d="$d/$part"
    [ -d "$d" ] || break
    runuser -u postgres -- test -x "$d" 2>/dev/null || return 1
  done
}

state_dir() {
  if [ -n "${FLOW_BEAM_PG_STATE:-}" ]; then echo "$FLOW_BEAM_PG_STATE"; return; fi
  if [ -f "$LEGACY_STATE/data/PG_VERSION" ] || pg_can_reach "$LEGACY_STATE"; then echo "$LEGACY_STATE"; return; fi
  echo "/var/tmp/flow-beam-pg-$(id -u)-$PORT"
}

STATE="$(state_dir)"
DATA="$STATE/data"
LOG="$STATE/server.log"
TIMEOUT="${FLOW_BEAM_START_TIMEOUT:-60}"

bindir() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

install() {
  if bindir >/dev/null; then return 0; fi
  fb_log "installing Debian's postgresql package"
  fb_apt_install postgresql
  # the package may start its own cluster on 5432; we run a private one, so stop the packaged one
  local v
  for v in /etc/postgresql/*/main; do
    [ -d "$v" ] || continue
    pg_ctlcluster --force "$(basename "$(dirname "$v")")" main stop >/dev/null 2>&1 || true
  done
  bindir >/dev/null || fb_die "PostgreSQL server binaries not found under /usr/lib/postgresql after install"
}

answers() { "$(bindir)/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -XAtqc "select 1" >/dev/null 2>&1; }

running() {
  local bin
  bin="$(bindir)" || return 1
  [ -f "$DATA/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

# The postgres user must be able to reach the state dir; nothing here changes a folder's permissions to get there.
check_reachable() {
  [ "$(id -u)" = 0 ] || return 0
  if [ -L "$STATE" ] || { [ -e "$STATE" ] && [ "$(stat -c %U "$STATE")" != postgres ] && [ "$STATE" != "$LEGACY_STATE" ]; }; then
    fb_die "$STATE exists but is not a folder owned by postgres (refusing to use it); remove it or set FLOW_BEAM_PG_STATE"
  fi
  pg_can_reach "$STATE" || fb_die "the postgres user cannot reach $STATE (a parent folder is not traversable); set FLOW_BEAM_PG_STATE to a folder outside your home, e.g. /var/tmp/flow-beam-pg"
}

start() {
  install
  local bin
  bin="$(bindir)"
  if running && answers; then fb_log "already running on 127.0.0.1:$PORT"; return 0; fi
  if ! running && fb_port_open "$PORT"; then
    fb_die "port 127.0.0.1:$PORT is already in use by another process (not the cluster in $DATA); stop it or set FLOW_BEAM_PG_PORT"
  fi
  STATE="$(state_dir)"; DATA="$STATE/data"; LOG="$STATE/server.log"  # postgres may exist only now
  check_reachable
  mkdir -p "$STATE"
  touch "$LOG"
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres:postgres "$STATE"
  fi
  chmod 700 "$STATE"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    rm -rf "$DATA"
    as_pg "$bin/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >>"$LOG" 2>&1 \
      || { echo "[postgres] ERROR: initdb failed" >&2; fb_tail_log "$LOG"; exit 1; }
  fi
  if ! running; then
    as_pg "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t "$TIMEOUT" \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -k $STATE -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null 2>&1 || { echo "[postgres] ERROR: PostgreSQL did not start" >&2; fb_tail_log "$LOG"; exit 1; }
  fi
  local deadline=$((SECONDS + TIMEOUT))
  until answers; do
    if ((SECONDS >= deadline)); then
      echo "[postgres] ERROR: PostgreSQL is not answering on 127.0.0.1:$PORT after ${TIMEOUT}s" >&2
      fb_tail_log "$LOG"; exit 1
    fi
    sleep 0.2
  done
  fb_log "running on 127.0.0.1:$PORT (data $DATA, log $LOG)"
}

stop() {
  if running; then
    as_pg "$(bindir)/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
    fb_log "stopped"
  else
    fb_log "not running"
  fi
}

status() {
  if running && answers; then
    echo "postgres: running on 127.0.0.1:$PORT (data $DATA)"
  elif running; then
    echo "postgres: process running ($DATA) but not answering on 127.0.0.1:$PORT"; return 1
  else
    echo "postgres: stopped"; return 1
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export FLOW_BEAM_PG_URL=postgresql://postgres@127.0.0.1:$PORT/postgres" ;;
  *) fb_usage ;;
esac
