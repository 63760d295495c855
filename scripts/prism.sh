#!/usr/bin/env bash
# Prism, Beam's Go runner, built from the Go module proxy with `go install` (needs Go >= 1.24 on PATH).
#   bash scripts/prism.sh install|start|stop|status|env
#   binary    $FLOW_BEAM_CACHE/bin/prism (GOPATH, GOMODCACHE and GOCACHE under $FLOW_BEAM_CACHE/go, so rebuilds reuse them)
#   version   FLOW_BEAM_BEAM_VERSION (default 2.77.0, must match the apache-beam Python package)
# Clients: --runner=PrismRunner --prism_location=$FLOW_BEAM_PRISM --environment_type=LOOPBACK
# (without --prism_location the SDK tries to download prism from GitHub, which fails here).
# There is no long-running server: Beam's PrismRunner starts its own prism per pipeline (a standalone
# `prism -job_port N` listens on ALL interfaces - it has no bind-address option, see
# go/pkg/beam/runners/prism/internal/jobservices/server.go - so this script does not run one).
# `start` therefore installs and checks the binary runs; `stop` has nothing to stop.
# Measured here (2 cores): cold install (empty module + build cache) 110-210 s; rebuild with warm Go caches ~5 s;
# warm install/start ~0.03 s. A tiny LOOPBACK pipeline on PrismRunner takes ~1 s.
set -euo pipefail
# shellcheck disable=SC2034  # read by lib/common.sh
FB_COMPONENT=prism
# shellcheck source=lib/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/common.sh"

BEAM_VERSION="${FLOW_BEAM_BEAM_VERSION:-2.77.0}"
BIN="$FB_CACHE/bin/prism"
STAMP="$FB_CACHE/bin/.prism.version"
STATE="$FB_STATE_ROOT/prism"
LOG="$STATE/install.log"

installed() { [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$BEAM_VERSION" ]; }

install() {
  if installed; then return 0; fi
  command -v go >/dev/null 2>&1 || fb_die "Go (>= 1.24) is needed to build prism and is not on PATH"
  mkdir -p "$FB_CACHE/bin" "$FB_CACHE/go" "$STATE"
  fb_log "building prism v$BEAM_VERSION with go install (cold: a few minutes; log $LOG)"
  if ! GOBIN="$FB_CACHE/bin" GOPATH="$FB_CACHE/go" GOMODCACHE="$FB_CACHE/go/pkg/mod" GOCACHE="$FB_CACHE/go/build" \
      GOFLAGS="${FLOW_BEAM_GOFLAGS:--mod=mod}" GO111MODULE=on \
      go install "github.com/apache/beam/sdks/v2/go/cmd/prism@v$BEAM_VERSION" >"$LOG" 2>&1; then
    echo "[prism] ERROR: go install failed" >&2
    fb_tail_log "$LOG"
    exit 1
  fi
  "$BIN" -h >/dev/null 2>&1 || fb_die "$BIN was built but does not run"
  echo "$BEAM_VERSION" >"$STAMP"
}

status() {
  if installed && "$BIN" -h >/dev/null 2>&1; then
    echo "prism: ready at $BIN (v$BEAM_VERSION; started per pipeline by PrismRunner)"
  else
    echo "prism: not installed (bash $0 install)"; return 1
  fi
}

case "${1:-}" in
  install) install ;;
  start) install; status >&2 ;;
  stop) fb_log "nothing to stop (PrismRunner starts and stops prism per pipeline)" ;;
  status) status ;;
  env) echo "export FLOW_BEAM_PRISM=$BIN" ;;
  *) fb_usage ;;
esac
