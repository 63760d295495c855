#!/usr/bin/env bash
# A Kinesis-API server on 127.0.0.1: kinesalite from npm (LevelDB-backed), for the kinesis_consumer connector.
#   bash scripts/kinesis.sh install|start|stop|status|env
#   port      FLOW_BEAM_KINESIS_PORT (default 19567)
#   version   FLOW_BEAM_KINESALITE_VERSION (default 3.3.3)
#   install   $FLOW_BEAM_CACHE/kinesalite (npm install --prefix; needs Node >= 18 and npm on PATH)
#   state     $FLOW_BEAM_STATE/kinesis (default ~/.cache/flow-beam/run/kinesis): kinesis.pid, server.log,
#             data/ (LevelDB: streams and records survive a restart)
# Streams become ACTIVE at once (--createStreamMs 0 and friends). Any access key is accepted.
# Clients: endpoint $FLOW_BEAM_KINESIS_ENDPOINT with the AWS_* variables `env` prints (plain HTTP).
# Measured here (2 cores): cold install (npm; leveldown ships prebuilt binaries, nothing compiles) ~7 s; warm
# install ~0.01 s; start ~0.7 s; stop ~1.5 s; disk 15 MB.
set -euo pipefail
# shellcheck disable=SC2034  # read by lib/common.sh
FB_COMPONENT=kinesis
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
# shellcheck source=lib/server.sh
. "$HERE/lib/server.sh"

PORT="${FLOW_BEAM_KINESIS_PORT:-19567}"
VERSION="${FLOW_BEAM_KINESALITE_VERSION:-3.3.3}"
DIR="$FB_CACHE/kinesalite"
STATE="$FB_STATE_ROOT/kinesis"
PIDFILE="$STATE/kinesis.pid"
LOG="$STATE/server.log"
MARKER="kinesalite"
TIMEOUT="${FLOW_BEAM_START_TIMEOUT:-30}"
WHAT="kinesalite on 127.0.0.1:$PORT"

install() {
  fb_npm "$DIR" "kinesalite@$VERSION"
  [ -x "$DIR/node_modules/.bin/kinesalite" ] || fb_die "npm installed kinesalite but $DIR/node_modules/.bin/kinesalite is missing"
}

launch() {
  mkdir -p "$STATE/data"
  fb_spawn "$PIDFILE" "$LOG" node "$DIR/node_modules/.bin/$MARKER" --host 127.0.0.1 --port "$PORT" \
    --path "$STATE/data" --createStreamMs 0 --deleteStreamMs 0 --updateStreamMs 0
}

# any HTTP answer (kinesalite answers a bare GET with 400)
answers() {
  if command -v curl >/dev/null 2>&1; then
    [ "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://127.0.0.1:$PORT/" || true)" != 000 ]
  else
    fb_port_open "$PORT"
  fi
}

env_lines() {
  echo "export FLOW_BEAM_KINESIS_ENDPOINT=http://127.0.0.1:$PORT"
  echo "export AWS_ACCESS_KEY_ID=\${AWS_ACCESS_KEY_ID:-flowbeam-test}"
  echo "export AWS_SECRET_ACCESS_KEY=\${AWS_SECRET_ACCESS_KEY:-flowbeam-test-secret}"
  echo "export AWS_DEFAULT_REGION=\${AWS_DEFAULT_REGION:-us-east-1}"
}

fb_server_main "$@"
