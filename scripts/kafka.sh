#!/usr/bin/env bash
# A single-node Kafka broker (KRaft, broker+controller in one JVM) on 127.0.0.1, from Maven Central jars.
#   bash scripts/kafka.sh install|start|stop|status|env|topic NAME [PARTITIONS]
#   ports     FLOW_BEAM_KAFKA_PORT (PLAINTEXT, default 19092), FLOW_BEAM_KAFKA_CONTROLLER_PORT (default 19093)
#   jars      $FLOW_BEAM_CACHE/kafka-libs (Kafka version: scripts/kafka/pom.xml), Maven repo $FLOW_BEAM_CACHE/m2
#   state     $FLOW_BEAM_STATE/kafka (default ~/.cache/flow-beam/run/kafka): server.properties, data/, server.log, kafka.pid
# Needs java 17+ and mvn (installed from Debian when missing).
# Measured here (2 cores): cold `start` with an empty cache (mvn fetch ~5 s + format + boot) ~10 s;
# start of existing storage ~3 s; start when already running ~0.02 s; stop ~2 s; `topic` ~1 s (one JVM).
set -euo pipefail
# shellcheck disable=SC2034  # read by lib/common.sh
FB_COMPONENT=kafka
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"

PORT="${FLOW_BEAM_KAFKA_PORT:-19092}"
CPORT="${FLOW_BEAM_KAFKA_CONTROLLER_PORT:-19093}"
POM="$HERE/kafka/pom.xml"
LIBS="$FB_CACHE/kafka-libs"
STATE="$FB_STATE_ROOT/kafka"
PIDFILE="$STATE/kafka.pid"
LOG="$STATE/server.log"
MARKER="kafka.Kafka"
TIMEOUT="${FLOW_BEAM_START_TIMEOUT:-90}"
CP="$LIBS/*"

install() {
  local want
  want="$(sha256sum "$POM" | cut -d' ' -f1)"
  if [ -f "$LIBS/.complete" ] && [ "$(cat "$LIBS/.complete")" = "$want" ]; then return 0; fi
  fb_need_java
  fb_log "fetching Kafka jars from Maven Central into $LIBS"
  rm -rf "$LIBS"
  mkdir -p "$LIBS" "$STATE"
  if ! mvn -B -q -Dstyle.color=never -Dmaven.repo.local="$FB_CACHE/m2" -f "$POM" dependency:copy-dependencies \
      -DoutputDirectory="$LIBS" -DincludeScope=runtime >"$STATE/install.log" 2>&1; then
    echo "[kafka] ERROR: mvn could not fetch the Kafka jars" >&2
    fb_tail_log "$STATE/install.log"
    exit 1
  fi
  ls "$LIBS"/kafka_2.13-*.jar >/dev/null 2>&1 || fb_die "no kafka_2.13 jar in $LIBS after mvn"
  echo "$want" >"$LIBS/.complete"
}

write_config() {
  cat >"$STATE/server.properties" <<PROPS
# written by scripts/kafka.sh start: do not edit (rewritten on every start)
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$STATE/data
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
}

answers() {
  fb_port_open "$PORT" && grep -q "Kafka Server started" "$LOG" 2>/dev/null
}

running() { fb_pid_alive "$PIDFILE" "$MARKER" >/dev/null; }

start() {
  install
  if running && answers; then fb_log "already running on 127.0.0.1:$PORT"; return 0; fi
  if running; then
    # started by an earlier call that has not finished booting: wait for it
    fb_wait_for "$TIMEOUT" "$PIDFILE" "$MARKER" "$LOG" "Kafka on 127.0.0.1:$PORT" answers
    fb_log "running on 127.0.0.1:$PORT"; return 0
  fi
  local p
  for p in "$PORT" "$CPORT"; do
    fb_port_open "$p" && fb_die "port 127.0.0.1:$p is already in use by another process; stop it or set FLOW_BEAM_KAFKA_PORT / FLOW_BEAM_KAFKA_CONTROLLER_PORT"
  done
  mkdir -p "$STATE"
  write_config
  # storage formatted for other ports (the controller address is part of the metadata): start afresh
  if [ -f "$STATE/data/meta.properties" ] && [ "$(cat "$STATE/format.key" 2>/dev/null)" != "$PORT $CPORT" ]; then
    fb_log "ports changed since the storage was formatted: wiping $STATE/data"
    rm -rf "$STATE/data"
  fi
  if [ ! -f "$STATE/data/meta.properties" ]; then
    local id
    id="$(java -cp "$CP" kafka.tools.StorageTool random-uuid 2>>"$LOG" | tail -n 1)"
    java -cp "$CP" kafka.tools.StorageTool format -t "$id" -c "$STATE/server.properties" >>"$LOG" 2>&1 \
      || { echo "[kafka] ERROR: formatting the storage failed" >&2; fb_tail_log "$LOG"; exit 1; }
    echo "$PORT $CPORT" >"$STATE/format.key"
  fi
  : >"$LOG.tmp" && mv "$LOG.tmp" "$LOG"  # fresh log per start: readiness is read from it
  fb_spawn "$PIDFILE" "$LOG" java -Xmx512m -Xms128m -XX:+UseSerialGC -Djava.awt.headless=true \
    -Dorg.slf4j.simpleLogger.showDateTime=true -cp "$CP" "$MARKER" "$STATE/server.properties"
  fb_wait_for "$TIMEOUT" "$PIDFILE" "$MARKER" "$LOG" "Kafka on 127.0.0.1:$PORT" answers
  fb_log "running on 127.0.0.1:$PORT (controller $CPORT, log $LOG)"
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
    echo "kafka: running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
  elif running; then
    echo "kafka: process running (pid $(cat "$PIDFILE")) but not answering on 127.0.0.1:$PORT"; return 1
  else
    echo "kafka: stopped"; return 1
  fi
}

topic() {
  local name="${1:-}" parts="${2:-1}"
  [ -n "$name" ] || fb_usage "topic NAME [PARTITIONS]"
  install
  { running && answers; } || fb_die "Kafka is not running: bash $0 start"
  java -Xmx256m -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$CP" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$PORT" \
    --create --if-not-exists --topic "$name" --partitions "$parts" --replication-factor 1 >&2
  echo "$name"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export FLOW_BEAM_KAFKA=127.0.0.1:$PORT" ;;
  topic) shift; topic "$@" ;;
  *) fb_usage "topic NAME [PARTITIONS]" ;;
esac
