#!/usr/bin/env bash
# An Azure Blob server on 127.0.0.1: Azurite's blob service, from npm (needs Node >= 18 and npm on PATH).
#   bash scripts/azurite.sh install|start|stop|status|env
#   port      FLOW_BEAM_AZURITE_PORT (default 19502)
#   version   FLOW_BEAM_AZURITE_VERSION (default 3.37.0)
#   install   $FLOW_BEAM_CACHE/azurite (npm install --prefix)
#   state     $FLOW_BEAM_STATE/azurite (default ~/.cache/flow-beam/run/azurite): azurite.pid, server.log,
#             data/ (blobs and metadata: they survive a restart)
# Account: Azurite's well-known development account devstoreaccount1 and its published key (not a secret).
# Clients: FLOW_BEAM_AZURE_CONNECTION_STRING (azure-storage-blob, adlfs). --skipApiVersionCheck lets newer client
# libraries talk to it; --loose accepts headers Azurite does not implement instead of failing the request.
# Measured here (2 cores, shared): cold install (npm, empty npm cache) ~100 s; warm install ~0.01 s; start ~2-6 s;
# stop ~1.4 s; disk 361 MB under the cache (+ ~80 MB npm cache).
set -euo pipefail
# shellcheck disable=SC2034  # read by lib/common.sh
FB_COMPONENT=azurite
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
# shellcheck source=lib/server.sh
. "$HERE/lib/server.sh"

PORT="${FLOW_BEAM_AZURITE_PORT:-19502}"
VERSION="${FLOW_BEAM_AZURITE_VERSION:-3.37.0}"
DIR="$FB_CACHE/azurite"
STATE="$FB_STATE_ROOT/azurite"
PIDFILE="$STATE/azurite.pid"
LOG="$STATE/server.log"
MARKER="azurite-blob"
TIMEOUT="${FLOW_BEAM_START_TIMEOUT:-60}"
WHAT="Azurite blob service on 127.0.0.1:$PORT"
ACCOUNT=devstoreaccount1
KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

install() {
  fb_npm "$DIR" "azurite@$VERSION"
  [ -x "$DIR/node_modules/.bin/azurite-blob" ] || fb_die "npm installed azurite but $DIR/node_modules/.bin/azurite-blob is missing"
}

launch() {
  mkdir -p "$STATE/data"
  fb_spawn "$PIDFILE" "$LOG" node "$DIR/node_modules/.bin/$MARKER" --blobHost 127.0.0.1 --blobPort "$PORT" \
    --location "$STATE/data" --skipApiVersionCheck --loose --disableProductStyleUrl
}

# any HTTP answer (an unsigned request gets 403 from a live Azurite)
answers() {
  if command -v curl >/dev/null 2>&1; then
    [ "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://127.0.0.1:$PORT/$ACCOUNT?comp=list" || true)" != 000 ]
  else
    fb_port_open "$PORT"
  fi
}

# Azurite closes its servers and persists its metadata on TERM but its node process then lingers (timers left
# running): once the log says it closed, the rest of the group is killed.
azurite_stop() {
  local pid i
  if pid="$(fb_pid_alive "$PIDFILE" "$MARKER")"; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < 75; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      grep -q "Azurite Blob service successfully closed" "$LOG" 2>/dev/null && break
      sleep 0.2
    done
    fb_kill_group "$PIDFILE" "$MARKER" 1
    fb_log "stopped"
  else
    rm -f "$PIDFILE"
    fb_log "not running"
  fi
}

env_lines() {
  echo "export FLOW_BEAM_AZURE_CONNECTION_STRING='DefaultEndpointsProtocol=http;AccountName=$ACCOUNT;AccountKey=$KEY;BlobEndpoint=http://127.0.0.1:$PORT/$ACCOUNT;'"
  echo "export FLOW_BEAM_AZURE_ENDPOINT=http://127.0.0.1:$PORT/$ACCOUNT"
  echo "export FLOW_BEAM_AZURE_ACCOUNT=$ACCOUNT"
  echo "export FLOW_BEAM_AZURE_KEY='$KEY'"
}

case "${1:-}" in
  stop) azurite_stop ;;
  *) fb_server_main "$@" ;;
esac
