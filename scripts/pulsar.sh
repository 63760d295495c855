#!/usr/bin/env bash
# An Apache Pulsar standalone (broker + one BookKeeper bookie + RocksDB metadata store, one JVM) on 127.0.0.1,
# from Maven Central jars (org.apache.pulsar:pulsar-broker, main class org.apache.pulsar.PulsarStandaloneStarter).
#   bash scripts/pulsar.sh install|start|stop|status|env|topic NAME [PARTITIONS]
#   ports  FLOW_BEAM_PULSAR_PORT (binary protocol, default 16650), FLOW_BEAM_PULSAR_WEB_PORT (HTTP admin/REST,
#          default 18080), FLOW_BEAM_PULSAR_BOOKIE_PORT (BookKeeper bookie, default 13181). Nothing else listens:
#          no ZooKeeper (RocksDB metadata), no functions worker, no stream storage, no WebSocket/TLS/bookie HTTP.
#   jars   $FLOW_BEAM_CACHE/pulsar-libs (Pulsar version: scripts/pulsar/pom.xml), Maven repo $FLOW_BEAM_CACHE/m2
#   state  $FLOW_BEAM_STATE/pulsar (default ~/.cache/flow-beam/run/pulsar): standalone.conf, log4j2.properties,
#          data/ (metadata + bookie), server.log, pulsar.pid
# Needs java 17+ and mvn (installed from Debian when missing).
# Measured here (2 shared cores, 2026-12-02): install cold (empty Maven repo) 50 s, 282 MB into the Maven repo +
# 242 MB (327 jars) in pulsar-libs; install warm (jars already in the Maven repo) 14 s; installed: 0.01 s.
# start with fresh state 24 s (JVM + bookie + broker, "messaging service is ready" after ~13 s of it), start of
# existing state 24 s, start when already running 0.1 s; stop 3-7 s. Broker JVM: -Xmx512m + 256m direct memory,
# ~310 MB resident; data folder of a fresh standalone 83 MB (journal/entry-log preallocation).
set -euo pipefail
# shellcheck disable=SC2034  # read by lib/common.sh
FB_COMPONENT=pulsar
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"

PORT="${FLOW_BEAM_PULSAR_PORT:-16650}"
WEB="${FLOW_BEAM_PULSAR_WEB_PORT:-18080}"
BKPORT="${FLOW_BEAM_PULSAR_BOOKIE_PORT:-13181}"
POM="$HERE/pulsar/pom.xml"
LIBS="$FB_CACHE/pulsar-libs"
STATE="$FB_STATE_ROOT/pulsar"
PIDFILE="$STATE/pulsar.pid"
LOG="$STATE/server.log"
MARKER="org.apache.pulsar.PulsarStandaloneStarter"
TIMEOUT="${FLOW_BEAM_START_TIMEOUT:-180}"
CP="$LIBS/*"

install() {
  local want
  want="$(sha256sum "$POM" | cut -d' ' -f1)"
  if [ -f "$LIBS/.complete" ] && [ "$(cat "$LIBS/.complete")" = "$want" ]; then return 0; fi
  fb_need_java
  fb_log "fetching Pulsar jars from Maven Central into $LIBS"
  rm -rf "$LIBS"
  mkdir -p "$LIBS" "$STATE"
  if ! mvn -B -q -Dstyle.color=never -Dmaven.repo.local="$FB_CACHE/m2" -f "$POM" dependency:copy-dependencies \
      -DoutputDirectory="$LIBS" -DincludeScope=runtime >"$STATE/install.log" 2>&1; then
    echo "[pulsar] ERROR: mvn could not fetch the Pulsar jars" >&2
    fb_tail_log "$STATE/install.log"
    exit 1
  fi
  ls "$LIBS"/pulsar-broker-[0-9]*.jar >/dev/null 2>&1 || fb_die "no pulsar-broker jar in $LIBS after mvn"
  echo "$want" >"$LIBS/.complete"
}

write_config() {
  # Keys absent here take Pulsar's ServiceConfiguration / BookKeeper ServerConfiguration defaults. The broker and
  # the bookie both read this file (PulsarStandalone loads it twice).
  cat >"$STATE/standalone.conf" <<CONF
# written by scripts/pulsar.sh start: do not edit (rewritten on every start)
clusterName=standalone
# --- broker: every listener on 127.0.0.1
bindAddress=127.0.0.1
advertisedAddress=127.0.0.1
brokerServicePort=$PORT
webServicePort=$WEB
webSocketServiceEnabled=false
functionsWorkerEnabled=false
transactionCoordinatorEnabled=false
numHttpServerThreads=4
numIOThreads=2
allowAutoTopicCreation=true
allowAutoTopicCreationType=non-partitioned
brokerDeleteInactiveTopicsEnabled=false
managedLedgerDefaultEnsembleSize=1
managedLedgerDefaultWriteQuorum=1
managedLedgerDefaultAckQuorum=1
managedLedgerCacheSizeMB=32
# --- bookie: the loopback interface only, on the port given to --bookkeeper-port
allowLoopback=true
listeningInterface=lo
allowEphemeralPorts=true
httpServerEnabled=false
ledgerStorageClass=org.apache.bookkeeper.bookie.storage.ldb.DbLedgerStorage
dbStorage_writeCacheMaxSizeMb=16
dbStorage_readAheadCacheMaxSizeMb=16
dbStorage_rocksDB_blockCacheSize=16777216
journalSyncData=false
diskUsageThreshold=0.99
diskUsageWarnThreshold=0.98
CONF
  cat >"$STATE/log4j2.properties" <<'LOG4J'
# written by scripts/pulsar.sh start
status = warn
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{ISO8601} %-5level [%t] %c{1} - %msg%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
LOG4J
}

# Ready = the standalone has created the tenant and namespace public/default (its last boot step); the tenant is
# looked up first so polling does not fill the log with "Tenant not found" errors.
answers() {
  fb_port_open "$PORT" || return 1
  curl -sf --max-time 5 "http://127.0.0.1:$WEB/admin/v2/tenants" 2>/dev/null | grep -q '"public"' || return 1
  curl -sf --max-time 5 "http://127.0.0.1:$WEB/admin/v2/namespaces/public" 2>/dev/null | grep -q '"public/default"'
}

running() { fb_pid_alive "$PIDFILE" "$MARKER" >/dev/null; }

start() {
  install
  command -v curl >/dev/null 2>&1 || { fb_log "curl missing: installing Debian's curl"; fb_apt_install curl; }
  if running && answers; then fb_log "already running on 127.0.0.1:$PORT (web $WEB)"; return 0; fi
  if running; then
    # started by an earlier call that has not finished booting: wait for it
    fb_wait_for "$TIMEOUT" "$PIDFILE" "$MARKER" "$LOG" "Pulsar on 127.0.0.1:$PORT" answers
    fb_log "running on 127.0.0.1:$PORT (web $WEB)"; return 0
  fi
  local p
  for p in "$PORT" "$WEB" "$BKPORT"; do
    fb_port_open "$p" && fb_die "port 127.0.0.1:$p is already in use by another process; stop it or set FLOW_BEAM_PULSAR_PORT / FLOW_BEAM_PULSAR_WEB_PORT / FLOW_BEAM_PULSAR_BOOKIE_PORT"
  done
  mkdir -p "$STATE"
  write_config
  # the bookie's cookie and the cluster's metadata record the ports: other ports need fresh data
  if [ -d "$STATE/data" ] && [ "$(cat "$STATE/data.key" 2>/dev/null)" != "$PORT $WEB $BKPORT" ]; then
    fb_log "ports changed since the data was created: wiping $STATE/data"
    rm -rf "$STATE/data"
  fi
  mkdir -p "$STATE/data"
  echo "$PORT $WEB $BKPORT" >"$STATE/data.key"
  : >"$LOG.tmp" && mv "$LOG.tmp" "$LOG"  # fresh log per start
  # cwd = state folder: PulsarStandalone resolves its default relative paths (data/standalone/...) from there
  cd "$STATE"
  fb_spawn "$PIDFILE" "$LOG" java -Xms128m -Xmx512m -XX:MaxDirectMemorySize=256m -XX:+UseSerialGC \
    -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true \
    -Dlog4j.configurationFile="$STATE/log4j2.properties" \
    -Dio.netty.tryReflectionSetAccessible=true -Dpulsar.allocator.exit_on_oom=true \
    --add-opens java.base/java.io=ALL-UNNAMED --add-opens java.base/java.util.zip=ALL-UNNAMED \
    --add-opens java.base/sun.net=ALL-UNNAMED --add-opens java.management/sun.management=ALL-UNNAMED \
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED --add-opens java.base/java.lang=ALL-UNNAMED \
    --add-opens java.base/java.nio=ALL-UNNAMED --add-opens java.base/jdk.internal.misc=ALL-UNNAMED \
    -cp "$CP" "$MARKER" --config "$STATE/standalone.conf" --no-functions-worker --no-stream-storage \
    --metadata-dir "$STATE/data/metadata" --bookkeeper-dir "$STATE/data/bookkeeper" --bookkeeper-port "$BKPORT"
  fb_wait_for "$TIMEOUT" "$PIDFILE" "$MARKER" "$LOG" "Pulsar on 127.0.0.1:$PORT" answers
  fb_log "running on 127.0.0.1:$PORT (web $WEB, bookie $BKPORT, log $LOG)"
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
    echo "pulsar: running on 127.0.0.1:$PORT, web 127.0.0.1:$WEB (pid $(cat "$PIDFILE"))"
  elif running; then
    echo "pulsar: process running (pid $(cat "$PIDFILE")) but not answering on 127.0.0.1:$PORT / $WEB"; return 1
  else
    echo "pulsar: stopped"; return 1
  fi
}

# Create public/default/NAME with PARTITIONS partitions (0 = non-partitioned) through the admin REST API.
topic() {
  local name="${1:-}" parts="${2:-0}" code
  [ -n "$name" ] || fb_usage "topic NAME [PARTITIONS]"
  [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || fb_die "topic name '$name': use letters, digits, '.', '_' or '-'"
  [[ "$parts" =~ ^[0-9]+$ ]] || fb_die "PARTITIONS must be a number, not '$parts'"
  { running && answers; } || fb_die "Pulsar is not running: bash $0 start"
  local url="http://127.0.0.1:$WEB/admin/v2/persistent/public/default/$name"
  if [ "$parts" -gt 0 ]; then
    code="$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' --data "$parts" "$url/partitions")"
  else
    code="$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$url")"
  fi
  case "$code" in
    204 | 200 | 409) echo "persistent://public/default/$name" ;;
    *) fb_die "creating topic $name failed (HTTP $code from $url)" ;;
  esac
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export FLOW_BEAM_PULSAR=pulsar://127.0.0.1:$PORT FLOW_BEAM_PULSAR_ADMIN=http://127.0.0.1:$WEB" ;;
  topic) shift; topic "$@" ;;
  *) fb_usage "topic NAME [PARTITIONS]" ;;
esac
