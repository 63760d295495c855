#!/usr/bin/env bash
# The real components the tests use, each from its own script
# (scripts/{postgres,kafka,flink,prism,pubsub,kinesis,pulsar}.sh):
#   bash scripts/services.sh up [--strict] [pg] [kafka] [flink] [prism] [pubsub] [kinesis] [pulsar] [all]
#        start what is not running yet (default: pg kafka flink prism pubsub kinesis; flink = a real Flink 1.19
#        cluster + Beam's job server, cold install ~2-4 min, cached; `all` adds pulsar, a ~300 MB JVM that takes
#        ~25 s to start: tests/test_pulsar.py starts a private one itself when none runs). A component that fails
#        to start is a warning
#        (its tests then skip, saying why) unless --strict or FLOW_BEAM_SERVICES_STRICT=1: then exit 1.
#   bash scripts/services.sh down [pg|kafka|flink|prism|pubsub|kinesis|pulsar|all ...]
#        stop what `up` started (recorded in $FLOW_BEAM_STATE/services.started); or the named components
#   bash scripts/services.sh env       export lines for every component that is running (prism: installed)
#   bash scripts/services.sh status    one line per component
# Warm `up pg kafka prism` when all already run: ~0.2 s; from stopped (installed): ~5 s.
set -euo pipefail
# shellcheck disable=SC2034  # read by lib/common.sh
FB_COMPONENT=services
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"

STARTED="$FB_STATE_ROOT/services.started"
ALL=(pg kafka flink prism pubsub kinesis pulsar)
DEFAULT=(pg kafka flink prism pubsub kinesis)
STRICT="${FLOW_BEAM_SERVICES_STRICT:-0}"

script_of() {
  case "$1" in
    pg | postgres) echo "$HERE/postgres.sh" ;;
    kafka) echo "$HERE/kafka.sh" ;;
    flink) echo "$HERE/flink.sh" ;;
    prism) echo "$HERE/prism.sh" ;;
    pubsub) echo "$HERE/pubsub.sh" ;;
    kinesis) echo "$HERE/kinesis.sh" ;;
    pulsar) echo "$HERE/pulsar.sh" ;;
    *) echo "unknown component '$1' (pg, kafka, flink, prism, pubsub, kinesis, pulsar, all)" >&2; exit 2 ;;
  esac
}

validate() {
  local c
  for c in "$@"; do [ "$c" = all ] || [ "$c" = --strict ] || script_of "$c" >/dev/null; done
}

# Expand the arguments into a list of component names (validated); DEFAULT when empty.
components() {
  local c
  if [ $# -eq 0 ]; then printf '%s\n' "${DEFAULT[@]}"; return; fi
  for c in "$@"; do
    if [ "$c" = all ]; then printf '%s\n' "${ALL[@]}"; else script_of "$c" >/dev/null; [ "$c" = postgres ] && c=pg; echo "$c"; fi
  done | awk '!seen[$0]++'
}

up() {
  local args=() c failed=()
  for c in "$@"; do
    if [ "$c" = --strict ]; then STRICT=1; else args+=("$c"); fi
  done
  mkdir -p "$FB_STATE_ROOT"
  while read -r c; do
    if bash "$(script_of "$c")" status >/dev/null 2>&1; then
      fb_log "$c: already up"
      continue
    fi
    if bash "$(script_of "$c")" start || { fb_log "$c: retrying once"; sleep 3; bash "$(script_of "$c")" start; }; then
      grep -qx "$c" "$STARTED" 2>/dev/null || echo "$c" >>"$STARTED"
    else
      failed+=("$c")
    fi
  done < <(components "${args[@]+"${args[@]}"}")
  if [ ${#failed[@]} -gt 0 ]; then
    fb_log "WARNING: could not start: ${failed[*]} (their tests will skip)"
    [ "$STRICT" = 1 ] && exit 1
  fi
  return 0
}

down() {
  local list=() c
  if [ $# -eq 0 ]; then
    [ -f "$STARTED" ] || { fb_log "nothing recorded as started by 'up'"; return 0; }
    mapfile -t list <"$STARTED"
  else
    mapfile -t list < <(components "$@")
  fi
  # reverse order of starting
  for ((i = ${#list[@]} - 1; i >= 0; i--)); do
    c="${list[$i]}"
    [ -n "$c" ] || continue
    bash "$(script_of "$c")" stop || fb_log "WARNING: stopping $c failed"
    if [ -f "$STARTED" ]; then
      grep -vx "$c" "$STARTED" >"$STARTED.tmp" || true
      mv "$STARTED.tmp" "$STARTED"
    fi
  done
  [ -s "$STARTED" ] || rm -f "$STARTED"
}

env_lines() {
  local c
  for c in "${ALL[@]}"; do
    if bash "$(script_of "$c")" status >/dev/null 2>&1; then bash "$(script_of "$c")" env; fi
  done
}

status_all() {
  local c rc=0
  for c in "${ALL[@]}"; do bash "$(script_of "$c")" status || rc=1; done
  return $rc
}

cmd="${1:-}"
shift || true
case "$cmd" in
  up) validate "$@"; up "$@" ;;
  down) validate "$@"; down "$@" ;;
  env) env_lines ;;
  status) status_all ;;
  *) echo "usage: $0 up [--strict] [pg] [kafka] [flink] [prism] [pubsub] [kinesis] [pulsar] [all] | down [COMPONENT...|all] | env | status" >&2; exit 2 ;;
esac
