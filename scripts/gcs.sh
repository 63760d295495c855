#!/usr/bin/env bash
# A GCS-API server on 127.0.0.1: fake-gcs-server, built with `go install` from the Go module proxy (needs Go on PATH).
#   bash scripts/gcs.sh install|start|stop|status|env
#   port      FLOW_BEAM_GCS_PORT (default 19501)
#   backend   FLOW_BEAM_GCS_BACKEND: filesystem (default: objects under $STATE/data survive a restart) or memory
#   version   FLOW_BEAM_GCS_VERSION (default v1.56.1)
#   binary    $FLOW_BEAM_CACHE/bin/fake-gcs-server (GOPATH, GOMODCACHE, GOCACHE under $FLOW_BEAM_CACHE/go, shared
#             with scripts/prism.sh)
#   state     $FLOW_BEAM_STATE/gcs (default ~/.cache/flow-beam/run/gcs): gcs.pid, server.log, data/
# Clients: STORAGE_EMULATOR_HOST (google-cloud-storage, gcsfs); no authentication (any or no token is accepted).
# Measured here (2 cores, shared): cold install (go install with module + build caches cold for it) ~150 s; warm
# install ~0.01 s; start ~0.6 s; stop ~1 s; disk: binary 50 MB + ~840 MB added to the Go module/build cache.
set -euo pipefail
# shellcheck disable=SC2034  # read by lib/common.sh
FB_COMPONENT=gcs
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
# shellcheck source=lib/server.sh
. "$HERE/lib/server.sh"

PORT="${FLOW_BEAM_GCS_PORT:-19501}"
BACKEND="${FLOW_BEAM_GCS_BACKEND:-filesystem}"
VERSION="${FLOW_BEAM_GCS_VERSION:-v1.56.1}"
BIN="$FB_CACHE/bin/fake-gcs-server"
STAMP="$FB_CACHE/bin/.fake-gcs-server.version"
STATE="$FB_STATE_ROOT/gcs"
PIDFILE="$STATE/gcs.pid"
LOG="$STATE/server.log"
MARKER="fake-gcs-server"
TIMEOUT="${FLOW_BEAM_START_TIMEOUT:-60}"
WHAT="fake-gcs-server ($BACKEND) on 127.0.0.1:$PORT"

case "$BACKEND" in filesystem | memory) ;; *) fb_die "FLOW_BEAM_GCS_BACKEND must be filesystem or memory, not '$BACKEND'" ;; esac

install() {
  if [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$VERSION" ]; then return 0; fi
  command -v go >/dev/null 2>&1 || fb_die "Go (>= 1.22) is needed to build fake-gcs-server and is not on PATH"
  mkdir -p "$FB_CACHE/bin" "$FB_CACHE/go" "$STATE"
  fb_log "building fake-gcs-server $VERSION with go install (cold: a few minutes; log $STATE/install.log)"
  if ! GOBIN="$FB_CACHE/bin" GOPATH="$FB_CACHE/go" GOMODCACHE="$FB_CACHE/go/pkg/mod" GOCACHE="$FB_CACHE/go/build" \
      GOFLAGS="${FLOW_BEAM_GOFLAGS:--mod=mod}" GO111MODULE=on \
      go install "github.com/fsouza/fake-gcs-server@$VERSION" >"$STATE/install.log" 2>&1; then
    echo "[gcs] ERROR: go install github.com/fsouza/fake-gcs-server@$VERSION failed" >&2
    fb_tail_log "$STATE/install.log"
    exit 1
  fi
  "$BIN" -help >/dev/null 2>&1 || [ $? -le 2 ] || fb_die "$BIN was built but does not run"
  echo "$VERSION" >"$STAMP"
}

launch() {
  local args=(-scheme http -host 127.0.0.1 -port "$PORT" -public-host "127.0.0.1:$PORT"
              -external-url "http://127.0.0.1:$PORT" -backend "$BACKEND" -log-level warn)
  if [ "$BACKEND" = filesystem ]; then
    mkdir -p "$STATE/data"
    args+=(-filesystem-root "$STATE/data")
  fi
  fb_spawn "$PIDFILE" "$LOG" "$BIN" "${args[@]}"
}

answers() {
  if command -v curl >/dev/null 2>&1; then
    curl -sf -o /dev/null -m 5 "http://127.0.0.1:$PORT/storage/v1/b"
  else
    fb_port_open "$PORT"
  fi
}

env_lines() {
  echo "export STORAGE_EMULATOR_HOST=http://127.0.0.1:$PORT"
  echo "export FLOW_BEAM_GCS_ENDPOINT=http://127.0.0.1:$PORT"
}

fb_server_main "$@"
