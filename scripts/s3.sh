#!/usr/bin/env bash
# An S3-compatible server on 127.0.0.1: moto's standalone server (moto[server] from PyPI), for the s3 connector.
#   bash scripts/s3.sh install|start|stop|status|env
#   port      FLOW_BEAM_S3_PORT (default 19500)
#   venv      $FLOW_BEAM_CACHE/venvs/moto: moto's own small venv (moto[s3], flask, boto3...). Not the project venv:
#             moto pins boto3/botocore ranges of its own that need not agree with the ones s3fs' aiobotocore pins,
#             and the product never imports moto, so its resolver fights stay out of the project's dependencies.
#   state     $FLOW_BEAM_STATE/s3 (default ~/.cache/flow-beam/run/s3): s3.pid, server.log
# Buckets and objects live in memory only: stop (or a crash) forgets them. Any access key is accepted, unless
#   FLOW_BEAM_S3_AUTH=1: moto checks signatures and IAM policies (INITIAL_NO_AUTH_ACTION_COUNT); `start` then
#             creates user flowbeam (s3:*) and flowbeam-ro (read and list only) with access keys, kept in
#             $STATE/credentials.env, and `env` prints the first as AWS_* and the second as FLOW_BEAM_S3_RO_*.
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

AUTH="${FLOW_BEAM_S3_AUTH:-0}"
CREDS="$STATE/credentials.env"
[ "$AUTH" = 0 ] || WHAT="$WHAT, IAM auth on"

launch() {
  local auth=()
  rm -f "$CREDS"  # moto keeps users in memory: a new process needs new ones
  [ "$AUTH" = 0 ] || auth=(INITIAL_NO_AUTH_ACTION_COUNT=6)  # the unauthenticated calls make_users needs
  fb_spawn "$PIDFILE" "$LOG" env MOTO_ALLOW_NONEXISTENT_REGION=false "${auth[@]}" "$VENV/bin/python" \
    "$VENV/bin/$MARKER" -H 127.0.0.1 -p "$PORT"
}

# auth mode: two IAM users with access keys (the calls moto lets through before it starts checking)
make_users() {
  [ "$AUTH" != 0 ] && [ ! -s "$CREDS" ] || return 0
  "$VENV/bin/python" - "http://127.0.0.1:$PORT" "$CREDS.tmp" <<'PY' >>"$LOG" 2>&1 || { fb_tail_log "$LOG"; fb_die "could not create the IAM users"; }
import json, sys
import boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="bootstrap",
                   aws_secret_access_key="bootstrap")
policies = {"flowbeam": ["s3:*"], "flowbeam-ro": ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"]}
lines = []
for user, actions in policies.items():
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    prefix = "AWS" if user == "flowbeam" else "FLOW_BEAM_S3_RO"
    lines += [f"export {prefix}_ACCESS_KEY_ID={key['AccessKeyId']}", f"export {prefix}_SECRET_ACCESS_KEY={key['SecretAccessKey']}"]
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PY
  chmod 600 "$CREDS.tmp" && mv "$CREDS.tmp" "$CREDS"
}

# moto's own health endpoint, answered once the app is up
answers() { command -v curl >/dev/null 2>&1 && curl -sf -o /dev/null -m 5 "http://127.0.0.1:$PORT/moto-api/data.json" \
  || { ! command -v curl >/dev/null 2>&1 && fb_port_open "$PORT"; }; }

env_lines() {
  echo "export FLOW_BEAM_S3_ENDPOINT=http://127.0.0.1:$PORT"
  if [ "$AUTH" != 0 ]; then
    [ -s "$CREDS" ] || fb_die "auth mode: no $CREDS yet (bash $0 start)"
    cat "$CREDS"
    echo "export AWS_DEFAULT_REGION=us-east-1"
    return 0
  fi
  # moto accepts any key: keep the caller's AWS_* when set (requests go to 127.0.0.1 only)
  echo "export AWS_ACCESS_KEY_ID=\${AWS_ACCESS_KEY_ID:-flowbeam-test}"
  echo "export AWS_SECRET_ACCESS_KEY=\${AWS_SECRET_ACCESS_KEY:-flowbeam-test-secret}"
  echo "export AWS_DEFAULT_REGION=\${AWS_DEFAULT_REGION:-us-east-1}"
}

case "${1:-}" in
  start) fb_server_start; make_users ;;
  *) fb_server_main "$@" ;;
esac
