#!/usr/bin/env bash
# PostgreSQL for tests and CI: Debian's `postgresql` package, a private cluster on 127.0.0.1.
#   bash scripts/postgres.sh install|start|stop|status|env
# State (data dir, socket, log) lives in $FLOW_BEAM_STATE/postgres (default /var/tmp/flow-beam/postgres);
# port $FLOW_BEAM_PG_PORT (default 54329). The server refuses to run as root, so it runs as user `postgres`.
# Cold: apt install ~40 s when the package is missing; initdb + start ~3 s; warm start <1 s.
set -euo pipefail
PORT="${FLOW_BEAM_PG_PORT:-54329}"
STATE="${FLOW_BEAM_STATE:-/var/tmp/flow-beam}/postgres"  # outside /root: the postgres user must reach it
DATA="$STATE/data"
LOG="$STATE/server.log"

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && echo "$d"
}

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

install() {
  if [ -z "$(bindir)" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
    # the package starts its own cluster on 5432; we run a private one, so stop the packaged service
    (service postgresql stop || pg_ctlcluster --force "$(ls /etc/postgresql | head -n1)" main stop) >/dev/null 2>&1 || true
  fi
  bindir >/dev/null || { echo "PostgreSQL server binaries not found after install" >&2; exit 1; }
}

running() { [ -n "$(bindir)" ] && [ -f "$DATA/postmaster.pid" ] && as_pg "$(bindir)/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

start() {
  install
  local bin; bin=$(bindir)
  if running; then return 0; fi
  mkdir -p "$STATE"
  if [ "$(id -u)" = 0 ]; then chmod 755 "$(dirname "$STATE")"; chown -R postgres:postgres "$STATE"; chmod 700 "$STATE"; fi
  if [ ! -f "$DATA/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  as_pg "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $STATE -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null || { echo "PostgreSQL did not start; last log lines:" >&2; tail -n 30 "$LOG" >&2; exit 1; }
  for _ in $(seq 1 50); do
    if psql -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -Atc "select 1" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "PostgreSQL is not answering on 127.0.0.1:$PORT; last log lines:" >&2; tail -n 30 "$LOG" >&2; exit 1
}

stop() {
  if running; then as_pg "$(bindir)/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null; fi
}

case "${1:-}" in
  install) install ;;
  start) start; echo "PostgreSQL on 127.0.0.1:$PORT" ;;
  stop) stop ;;
  status) if running; then echo "running on 127.0.0.1:$PORT"; else echo "stopped"; exit 1; fi ;;
  env) echo "export FLOW_BEAM_PG_URL=postgresql://postgres@127.0.0.1:$PORT/postgres" ;;
  *) echo "usage: $0 install|start|stop|status|env" >&2; exit 2 ;;
esac
