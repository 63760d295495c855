#!/usr/bin/env bash
# An S3-compatible server on 127.0.0.1: moto's standalone server (moto[server] from PyPI), for the s3 connector.
#   bash scripts/s3.sh install|start|stop|status|env
#   port      FLOW_BEAM_S3_PORT (default 19500)
#   venv      $FLOW_BEAM_CACHE/venvs/moto: moto's own small venv (moto[s3], flask, boto3...). Not the project venv:
#             moto pins boto3/botocore ranges of its own that need not agree with the ones s3fs' aiobotocore pins,
#             and the product never imports moto, so its resolver fights stay out of the project's dependencies.
#   state     $FLOW_BEAM_STATE/s3 (default ~/.cache/flow-beam/run/s3): s3.pid, server.log
# Buckets and objects live in memory only: stop (or a crash) forgets them. Any access key is accepted.
# Clients: endpoint $FLOW_BEAM_S3_ENDPOINT with the AWS_* variables `env` prints.
# Measured here (2 cores): cold install (venv + pip from a warm pip cache) ~50 s; warm install ~0.02 s;
# start ~1.2 s; stop ~1.9 s; disk 140 MB (the venv; moto[server] would be 317 MB).
set -euo pipefail
# shellcheck disable=SC2034  # read by lib/common.sh
FB_COMPONENT=s3
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
# shellcheck source=lib/server.sh
. "$HERE/lib/server.sh"

PORT="${FLOW_BEAM_S3_PORT:-19500}"
VENV="$FB_CACHE/venvs/moto"
STATE="$FB_STATE_ROOT/s3"
PIDFILE="$STATE/s3.pid"
LOG="$STATE/server.log"
MARKER="moto_server"
TIMEOUT="${FLOW_BEAM_START_TIMEOUT:-60}"
WHAT="moto S3 server on 127.0.0.1:$PORT"
# moto[s3] plus the web app's two packages is moto[server] for S3 alone: 140 MB instead of 317 MB (all services)
MOTO_SPECS=("moto[s3]>=5.1,<6" "flask>=2.2,<4" "flask-cors>=4,<7")

install() { fb_venv "$VENV" "${MOTO_SPECS[@]}"; }

launch() {
  fb_spawn "$PIDFILE" "$LOG" env MOTO_ALLOW_NONEXISTENT_REGION=false "$VENV/bin/python" "$VENV/bin/$MARKER" \
    -H 127.0.0.1 -p "$PORT"
}

# moto's own health endpoint, answered once the app is up
answers() { command -v curl >/dev/null 2>&1 && curl -sf -o /dev/null -m 5 "http://127.0.0.1:$PORT/moto-api/data.json" \
  || { ! command -v curl >/dev/null 2>&1 && fb_port_open "$PORT"; }; }

env_lines() {
  echo "export FLOW_BEAM_S3_ENDPOINT=http://127.0.0.1:$PORT"
  # moto accepts any key: keep the caller's AWS_* when set (requests go to 127.0.0.1 only)
  echo "export AWS_ACCESS_KEY_ID=\${AWS_ACCESS_KEY_ID:-flowbeam-test}"
  echo "export AWS_SECRET_ACCESS_KEY=\${AWS_SECRET_ACCESS_KEY:-flowbeam-test-secret}"
  echo "export AWS_DEFAULT_REGION=\${AWS_DEFAULT_REGION:-us-east-1}"
}

fb_server_main "$@"
