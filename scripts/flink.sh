#!/usr/bin/env bash
# Beam's portable Flink job server (embedded local Flink, `--flink-master [local]`) on 127.0.0.1.
#   bash scripts/flink.sh install|start|stop|status|env
#   jar       org.apache.beam:beam-runners-flink-$FLOW_BEAM_FLINK_VERSION-job-server:$FLOW_BEAM_BEAM_VERSION
#             (defaults 1.20 / 2.77.0) copied to $FLOW_BEAM_CACHE/jars and linked into ~/.apache_beam/cache/jars
#             (where Beam's Python SDK looks); FLOW_BEAM_FLINK_JAR=/path/to/job-server.jar uses a local jar instead
#   ports     FLOW_BEAM_FLINK_JOB_PORT (default 8099), FLOW_BEAM_FLINK_ARTIFACT_PORT (default 0 = any free port),
#             FLOW_BEAM_FLINK_EXPANSION_PORT (default -1 = none)
#   state     $FLOW_BEAM_STATE/flink (default ~/.cache/flow-beam/run/flink): server.log, flink.pid
# Clients: --runner=PortableRunner --job_endpoint=$FLOW_BEAM_FLINK_JOB_ENDPOINT --environment_type=LOOPBACK
# (LOOPBACK is required here: the default environment is Docker).
# KNOWN LIMIT (checked 2026-11 on this machine): the Maven Central that this machine reaches serves NO
# beam-runners-flink-*-job-server artifact (not 2.77.0, not 2.76.0, no maven-metadata.xml at all; Beam Java
# core is there only up to 2.76.0), so `install` fails with a clear error unless the jar is already cached or
# FLOW_BEAM_FLINK_JAR points at one. Cold install/start times could therefore not be measured here
# (expected: one ~250 MB download; job server start ~10 s).
set -euo pipefail
# shellcheck disable=SC2034  # read by lib/common.sh
FB_COMPONENT=flink
# shellcheck source=lib/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/common.sh"

FLINK_VERSION="${FLOW_BEAM_FLINK_VERSION:-1.20}"
BEAM_VERSION="${FLOW_BEAM_BEAM_VERSION:-2.77.0}"
ARTIFACT="org.apache.beam:beam-runners-flink-$FLINK_VERSION-job-server:$BEAM_VERSION"
JAR_NAME="beam-runners-flink-$FLINK_VERSION-job-server-$BEAM_VERSION.jar"
CACHED_JAR="$FB_CACHE/jars/$JAR_NAME"
BEAM_JARS="$HOME/.apache_beam/cache/jars"
JAR="${FLOW_BEAM_FLINK_JAR:-$CACHED_JAR}"
JOB_PORT="${FLOW_BEAM_FLINK_JOB_PORT:-8099}"
ARTIFACT_PORT="${FLOW_BEAM_FLINK_ARTIFACT_PORT:-0}"
EXPANSION_PORT="${FLOW_BEAM_FLINK_EXPANSION_PORT:--1}"
STATE="$FB_STATE_ROOT/flink"
PIDFILE="$STATE/flink.pid"
LOG="$STATE/server.log"
MARKER="$JAR_NAME"
[ -n "${FLOW_BEAM_FLINK_JAR:-}" ] && MARKER="$(basename "$FLOW_BEAM_FLINK_JAR")"
TIMEOUT="${FLOW_BEAM_START_TIMEOUT:-180}"

install() {
  if [ -n "${FLOW_BEAM_FLINK_JAR:-}" ]; then
    [ -s "$FLOW_BEAM_FLINK_JAR" ] || fb_die "FLOW_BEAM_FLINK_JAR=$FLOW_BEAM_FLINK_JAR does not exist"
    return 0
  fi
  fb_need_java
  if [ ! -s "$CACHED_JAR" ] && [ -s "$BEAM_JARS/$JAR_NAME" ] && [ ! -L "$BEAM_JARS/$JAR_NAME" ]; then
    mkdir -p "$FB_CACHE/jars" "$STATE"
    cp "$BEAM_JARS/$JAR_NAME" "$CACHED_JAR.tmp" && mv "$CACHED_JAR.tmp" "$CACHED_JAR"
  fi
  if [ ! -s "$CACHED_JAR" ]; then
    fb_log "fetching $ARTIFACT from Maven Central (large: ~250 MB)"
    mkdir -p "$FB_CACHE/jars" "$STATE"
    if ! mvn -B -q -U -Dstyle.color=never -Dmaven.repo.local="$FB_CACHE/m2" org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
        "-Dartifact=$ARTIFACT" "-DoutputDirectory=$FB_CACHE/jars" >"$STATE/install.log" 2>&1; then
      grep -E "ERROR" "$STATE/install.log" | head -n 3 >&2 || true
      fb_die "could not fetch $ARTIFACT: it is not on the Maven Central this machine reaches (checked: no
  beam-runners-flink-*-job-server version is served). Put the jar at $CACHED_JAR
  (or $BEAM_JARS/$JAR_NAME), or set FLOW_BEAM_FLINK_JAR=/path/to/$JAR_NAME."
    fi
    [ -s "$CACHED_JAR" ] || fb_die "mvn finished but $CACHED_JAR is missing"
  fi
  mkdir -p "$BEAM_JARS"
  if [ ! -e "$BEAM_JARS/$JAR_NAME" ] || [ -L "$BEAM_JARS/$JAR_NAME" ]; then
    ln -sfn "$CACHED_JAR" "$BEAM_JARS/$JAR_NAME"
  fi
}

answers() { fb_port_open "$JOB_PORT"; }
running() { fb_pid_alive "$PIDFILE" "$MARKER" >/dev/null; }

start() {
  install
  if running && answers; then fb_log "already running on 127.0.0.1:$JOB_PORT"; return 0; fi
  if ! running; then
    answers && fb_die "port 127.0.0.1:$JOB_PORT is already in use by another process; stop it or set FLOW_BEAM_FLINK_JOB_PORT"
    mkdir -p "$STATE"
    : >"$LOG"
    fb_spawn "$PIDFILE" "$LOG" java -Xmx1g \
      --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED \
      --add-opens=java.base/java.util=ALL-UNNAMED \
      -jar "$JAR" --flink-master '[local]' --job-host 127.0.0.1 --job-port "$JOB_PORT" \
      --artifact-port "$ARTIFACT_PORT" --expansion-port "$EXPANSION_PORT"
  fi
  fb_wait_for "$TIMEOUT" "$PIDFILE" "$MARKER" "$LOG" "Flink job server on 127.0.0.1:$JOB_PORT" answers
  fb_log "running on 127.0.0.1:$JOB_PORT (log $LOG)"
}

stop() {
  if running; then
    fb_kill_group "$PIDFILE" "$MARKER" 60
    fb_log "stopped"
  else
    rm -f "$PIDFILE"
    fb_log "not running"
  fi
}

status() {
  if running && answers; then
    echo "flink: job server running on 127.0.0.1:$JOB_PORT (pid $(cat "$PIDFILE"), jar $JAR)"
  elif running; then
    echo "flink: process running (pid $(cat "$PIDFILE")) but not answering on 127.0.0.1:$JOB_PORT"; return 1
  else
    echo "flink: stopped"; return 1
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  env)
    echo "export FLOW_BEAM_FLINK_JOB_ENDPOINT=127.0.0.1:$JOB_PORT"
    echo "export FLOW_BEAM_FLINK_JAR=$JAR"
    ;;
  *) fb_usage ;;
esac
