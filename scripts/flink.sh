#!/usr/bin/env bash
# A real Apache Flink cluster (a JobManager and a TaskManager, separate processes) plus Beam's portable Flink job
# server, every endpoint on 127.0.0.1, built only from Maven Central and PyPI packages.
#   bash scripts/flink.sh install|start|stop|status|env
#   versions  flow_beam/flink_pins.py (Beam Java runner 2.70.0 for Flink 1.19, job service sources 2.65.0,
#             Flink 1.19.3; the Python SDK is 2.77) - read below, never repeated here
#   jar       $FLOW_BEAM_CACHE/flink/flow-beam-flink-job-server-<beam>-flink<flink>.jar, built by Maven from
#             scripts/flink/pom.xml (Maven repo $FLOW_BEAM_CACHE/m2; rebuilt when the pom changes)
#   flink     $FLOW_BEAM_CACHE/flink/flink-<flink>: unpacked from the PyPI packages apache-flink-libraries (sdist:
#             lib/, opt/, plugins/) and apache-flink (wheel: bin/, conf/) fetched with `pip download --no-deps`;
#             NOT pip-installed (PyFlink pins its own apache-beam)
#   conf      $FLOW_BEAM_CACHE/flink/conf-local: for Beam's embedded `[local]` MiniCluster (FLINK_CONF_DIR; every
#             listener on 127.0.0.1, ephemeral ports); $STATE/conf: the cluster's (written by `start`)
#   ports     FLOW_BEAM_FLINK_REST_PORT (8081), FLOW_BEAM_FLINK_RPC_PORT (6123), FLOW_BEAM_FLINK_BLOB_PORT (6124),
#             FLOW_BEAM_FLINK_JOB_PORT (job server, 8099)
#   state     $FLOW_BEAM_STATE/flink (default ~/.cache/flow-beam/run/flink; FLOW_BEAM_FLINK_STATE overrides):
#             conf/, log/, checkpoints/, tmp/, {jobmanager,taskmanager,jobserver}.pid and .log
# Clients: flow-beam run --runner flink [--flink-master 127.0.0.1:8081]  (see flow_beam/runners.py)
# Needs java 17 and mvn (installed from Debian when missing). Measured times and disk: README, *Runners*.
set -euo pipefail
# shellcheck disable=SC2034  # read by lib/common.sh
FB_COMPONENT=flink
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"

PINS="$HERE/../flow_beam/flink_pins.py"
pin() {
  local v
  v="$(sed -n "s/^$1 = \"\([^\"]*\)\".*/\1/p" "$PINS")"
  [ -n "$v" ] || fb_die "no $1 in $PINS"
  echo "$v"
}
BEAM_JAVA="$(pin BEAM_JAVA)"
JOB_SERVICE="$(pin JOB_SERVICE_SOURCES)"
FLINK="$(pin FLINK)"
FLINK_MINOR="$(pin FLINK_MINOR)"

POM="$HERE/flink/pom.xml"
HOME_DIR="$FB_CACHE/flink"
JAR="$HOME_DIR/flow-beam-flink-job-server-$BEAM_JAVA-flink$FLINK.jar"
FLINK_HOME="$HOME_DIR/flink-$FLINK"
LOCAL_CONF="$HOME_DIR/conf-local"
PYTHON="${FLOW_BEAM_PYTHON:-}"
REST_PORT="${FLOW_BEAM_FLINK_REST_PORT:-8081}"
RPC_PORT="${FLOW_BEAM_FLINK_RPC_PORT:-6123}"
BLOB_PORT="${FLOW_BEAM_FLINK_BLOB_PORT:-6124}"
JOB_PORT="${FLOW_BEAM_FLINK_JOB_PORT:-8099}"
LOCAL_REST_PORTS="50100-50199"  # [local] MiniClusters (flow_beam/runners.py: LOCAL_REST_PORTS)
STATE="${FLOW_BEAM_FLINK_STATE:-$FB_STATE_ROOT/flink}"
CONF="$STATE/conf"
TIMEOUT="${FLOW_BEAM_START_TIMEOUT:-180}"
JM_PID="$STATE/jobmanager.pid"
TM_PID="$STATE/taskmanager.pid"
JS_PID="$STATE/jobserver.pid"
JM_MARK="StandaloneSessionClusterEntrypoint"
TM_MARK="TaskManagerRunner"
JS_MARK="$(basename "$JAR")"
JAVA_OPENS=(--add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED
  --add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.lang.invoke=ALL-UNNAMED)

python_bin() {
  if [ -n "$PYTHON" ]; then echo "$PYTHON"; return; fi
  local v
  for v in "${FLOW_BEAM_VENV:-}/bin/python" "$HERE/../.venv/bin/python" /work/main/.venv/bin/python; do
    [ -x "$v" ] && { echo "$v"; return; }
  done
  command -v python3 || fb_die "no python to run pip download with (set FLOW_BEAM_PYTHON)"
}

jar_ok() { [ -s "$JAR" ] && [ "$(cat "$JAR.pom.sha256" 2>/dev/null)" = "$(sha256sum "$POM" | cut -d' ' -f1)" ]; }
flink_ok() { [ -f "$FLINK_HOME/.complete" ] && [ -x "$FLINK_HOME/bin/jobmanager.sh" ]; }

build_jar() {
  local build="$HOME_DIR/build" log="$HOME_DIR/build.log"
  fb_need_java
  fb_log "building the job server with Maven (Beam $BEAM_JAVA for Flink $FLINK; cold ~1-4 min; log $log)"
  rm -rf "$build"
  mkdir -p "$build"
  cp "$POM" "$build/pom.xml"
  if ! mvn -B -q -Dstyle.color=never -Dmaven.repo.local="$FB_CACHE/m2" -f "$build/pom.xml" package \
      -Dbeam.version="$BEAM_JAVA" -Djob.service.version="$JOB_SERVICE" -Dflink.version="$FLINK" \
      -Dflink.minor="$FLINK_MINOR" >"$log" 2>&1; then
    echo "[flink] ERROR: the Maven build of the job server failed" >&2
    fb_tail_log "$log"
    exit 1
  fi
  mv "$build/target/flow-beam-flink-job-server-$BEAM_JAVA-flink$FLINK.jar" "$JAR.tmp"
  mv "$JAR.tmp" "$JAR"
  sha256sum "$POM" | cut -d' ' -f1 >"$JAR.pom.sha256"
  rm -rf "$build"
}

unpack_flink() {
  local dl="$HOME_DIR/download" py tmp="$FLINK_HOME.tmp"
  py="$(python_bin)"
  fb_log "fetching Flink $FLINK from PyPI (apache-flink-libraries sdist + apache-flink wheel, ~235 MB)"
  rm -rf "$dl" "$tmp"
  mkdir -p "$dl" "$tmp"
  "$py" -m pip download -q --no-deps --no-binary=:all: "apache-flink-libraries==$FLINK" -d "$dl" \
    || fb_die "pip download apache-flink-libraries==$FLINK failed"
  # the wheel only contributes bin/ and conf/ (shell scripts): any CPython 3.11 manylinux wheel will do
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
    --platform manylinux2014_x86_64 "apache-flink==$FLINK" -d "$dl" || fb_die "pip download apache-flink==$FLINK failed"
  tar xzf "$dl"/apache-flink-libraries-"$FLINK".tar.gz -C "$dl"
  mv "$dl/apache-flink-libraries-$FLINK/deps/"{lib,opt,plugins} "$tmp/"
  mkdir -p "$tmp/bin"
  mv "$dl/apache-flink-libraries-$FLINK/deps/bin/bash-java-utils.jar" "$tmp/bin/"
  (cd "$dl" && "$py" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall('wheel')" apache_flink-"$FLINK"-*.whl)
  cp -r "$dl/wheel/pyflink/bin/." "$tmp/bin/"
  cp -r "$dl/wheel/pyflink/conf" "$tmp/conf"
  chmod +x "$tmp/bin/"*.sh "$tmp/bin/flink"
  [ "$(find "$tmp/lib" -name 'flink-dist-*.jar' | wc -l)" = 1 ] || fb_die "no flink-dist jar in apache-flink-libraries"
  rm -rf "$FLINK_HOME" "$dl"
  mv "$tmp" "$FLINK_HOME"
  touch "$FLINK_HOME/.complete"
}

# config.yaml for a Flink process: $1 = folder, $2 = state folder (empty: none), then "key: value" lines
write_conf() {
  local dir="$1"; shift
  mkdir -p "$dir"
  cp "$FLINK_HOME/conf/"log4j*.properties "$FLINK_HOME/conf/"logback*.xml "$dir/"
  {
    echo "# written by scripts/flink.sh: every listener on 127.0.0.1"
    # the JVM options of Flink's own config.yaml (Java 17 module opens)
    sed -n '/^env:/,/^[a-z]/{/^ *all:/p}' "$FLINK_HOME/conf/config.yaml" | sed 's/^ *all:/env.java.opts.all:/'
    printf '%s\n' "jobmanager.bind-host: 127.0.0.1" "jobmanager.rpc.address: 127.0.0.1" \
      "taskmanager.bind-host: 127.0.0.1" "taskmanager.host: 127.0.0.1" "rest.address: 127.0.0.1" \
      "rest.bind-address: 127.0.0.1" "jobmanager.execution.failover-strategy: region" "$@"
  } >"$dir/config.yaml"
  echo "127.0.0.1:$REST_PORT" >"$dir/masters"
  echo "127.0.0.1" >"$dir/workers"
}

install() {
  mkdir -p "$HOME_DIR"
  jar_ok || build_jar
  flink_ok || unpack_flink
  # [local] (Beam's embedded MiniCluster): ephemeral ports, so concurrent local runs do not collide
  # (the REST API on the first free port of 50100-50199: flow-beam finds its job there to stop it with a drain)
  write_conf "$LOCAL_CONF" "rest.bind-port: $LOCAL_REST_PORTS" "blob.server.port: 0" "jobmanager.rpc.port: 0" \
    "taskmanager.rpc.port: 0" "taskmanager.data.port: 0" "metrics.internal.query-service.port: 0"
}

cluster_conf() {
  mkdir -p "$STATE/log" "$STATE/tmp" "$STATE/checkpoints"
  write_conf "$CONF" "jobmanager.rpc.port: $RPC_PORT" "rest.port: $REST_PORT" "blob.server.port: $BLOB_PORT" \
    "taskmanager.rpc.port: 0" "taskmanager.data.port: 0" "metrics.internal.query-service.port: 0" \
    "taskmanager.numberOfTaskSlots: 2" "parallelism.default: 1" \
    "jobmanager.memory.process.size: 1024m" "taskmanager.memory.process.size: 2200m" \
    "taskmanager.memory.jvm-metaspace.size: 768m" \
    "env.pid.dir: $STATE" "env.log.dir: $STATE/log" "io.tmp.dirs: $STATE/tmp" "web.tmpdir: $STATE/tmp" \
    "state.checkpoints.dir: file://$STATE/checkpoints" "state.savepoints.dir: file://$STATE/checkpoints" \
    "restart-strategy.type: fixed-delay" "restart-strategy.fixed-delay.attempts: 2" \
    "restart-strategy.fixed-delay.delay: 2 s" "web.submit.enable: false" "web.cancel.enable: true"
}

rest() { curl -fsS -m 5 "http://127.0.0.1:$REST_PORT$1" 2>/dev/null; }
jm_answers() { rest /overview >/dev/null; }
tm_registered() { rest /overview | grep -q '"taskmanagers":[1-9]'; }
js_answers() { fb_port_open "$JOB_PORT"; }
alive() { fb_pid_alive "$1" "$2" >/dev/null; }

spawn_flink() {  # $1 pidfile, $2 log, $3 jobmanager | taskmanager (each execs one java process)
  FLINK_CONF_DIR="$CONF" FLINK_PID_DIR="$STATE" FLINK_LOG_DIR="$STATE/log" \
    fb_spawn "$1" "$2" "$FLINK_HOME/bin/$3.sh" start-foreground
}

start() {
  install
  cluster_conf
  # all three at once (the TaskManager retries until the JobManager answers; the job server needs no cluster to
  # start): warm start ~= the slowest JVM instead of the sum
  if ! alive "$JM_PID" "$JM_MARK"; then
    jm_answers && fb_die "127.0.0.1:$REST_PORT already answers (another Flink?); stop it or set FLOW_BEAM_FLINK_REST_PORT"
    spawn_flink "$JM_PID" "$STATE/jobmanager.log" jobmanager
  fi
  if ! alive "$TM_PID" "$TM_MARK"; then
    spawn_flink "$TM_PID" "$STATE/taskmanager.log" taskmanager
  fi
  if ! alive "$JS_PID" "$JS_MARK"; then
    js_answers && fb_die "port 127.0.0.1:$JOB_PORT is already in use; stop that process or set FLOW_BEAM_FLINK_JOB_PORT"
    FLINK_CONF_DIR="$CONF" fb_spawn "$JS_PID" "$STATE/jobserver.log" java -Xmx768m "${JAVA_OPENS[@]}" \
      -Dorg.slf4j.simpleLogger.showDateTime=true -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS \
      -Djava.io.tmpdir="$STATE/tmp" -jar "$JAR" --flink-master "127.0.0.1:$REST_PORT" --flink-conf-dir "$CONF" \
      --job-host 127.0.0.1 --job-port "$JOB_PORT" --artifact-port 0 --expansion-port -1 \
      --artifacts-dir "$STATE/artifacts"
  fi
  fb_wait_for "$TIMEOUT" "$JM_PID" "$JM_MARK" "$STATE/jobmanager.log" "Flink JobManager on 127.0.0.1:$REST_PORT" jm_answers
  fb_wait_for "$TIMEOUT" "$TM_PID" "$TM_MARK" "$STATE/taskmanager.log" "Flink TaskManager registered" tm_registered
  fb_wait_for "$TIMEOUT" "$JS_PID" "$JS_MARK" "$STATE/jobserver.log" "Beam job server on 127.0.0.1:$JOB_PORT" js_answers
  fb_log "running: Flink $FLINK at 127.0.0.1:$REST_PORT (JobManager + TaskManager), job server 127.0.0.1:$JOB_PORT (logs $STATE)"
}

stop() {
  local any=0
  if alive "$JS_PID" "$JS_MARK"; then fb_kill_group "$JS_PID" "$JS_MARK" 30; any=1; fi
  if alive "$TM_PID" "$TM_MARK"; then fb_kill_group "$TM_PID" "$TM_MARK" 60; any=1; fi
  if alive "$JM_PID" "$JM_MARK"; then fb_kill_group "$JM_PID" "$JM_MARK" 60; any=1; fi
  rm -f "$JS_PID" "$TM_PID" "$JM_PID" "$STATE"/flink-*.pid
  if [ "$any" = 1 ]; then fb_log "stopped"; else fb_log "not running"; fi
}

status() {
  local jm=stopped tm=stopped js=stopped rc=0
  alive "$JM_PID" "$JM_MARK" && jm_answers && jm="up (pid $(cat "$JM_PID"))"
  alive "$TM_PID" "$TM_MARK" && tm_registered && tm="up (pid $(cat "$TM_PID"))"
  alive "$JS_PID" "$JS_MARK" && js_answers && js="up (pid $(cat "$JS_PID"))"
  [[ "$jm$tm$js" == *stopped* ]] && rc=1
  echo "flink: JobManager 127.0.0.1:$REST_PORT $jm; TaskManager $tm; job server 127.0.0.1:$JOB_PORT $js"
  return $rc
}

env_lines() {
  echo "export FLOW_BEAM_FLINK_JAR=$JAR"
  echo "export FLOW_BEAM_FLINK_CONF_DIR=$LOCAL_CONF"
  if alive "$JM_PID" "$JM_MARK" && alive "$JS_PID" "$JS_MARK"; then
    echo "export FLOW_BEAM_FLINK_MASTER=127.0.0.1:$REST_PORT"
    echo "export FLOW_BEAM_FLINK_JOB_ENDPOINT=127.0.0.1:$JOB_PORT"
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) env_lines ;;
  *) fb_usage ;;
esac
