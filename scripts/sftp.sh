#!/usr/bin/env bash
# An SFTP server on 127.0.0.1: Debian's OpenSSH sshd, run privately (its own config, keys and pid; never the
# system's sshd), SFTP only, public-key auth only, for the sftp connector.
#   bash scripts/sftp.sh install|start|stop|status|env
#   port      FLOW_BEAM_SFTP_PORT (default 19522)
#   user      FLOW_BEAM_SFTP_USER (default: the user running this script; it must be an account on this machine)
#   state     $FLOW_BEAM_STATE/sftp (default ~/.cache/flow-beam/run/sftp): sshd_config, ssh_host_ed25519_key (host
#             key), client_ed25519 (+.pub; the client's key, the only authorized key), known_hosts (for clients),
#             sshd.pid, server.log, root/ (the SFTP root folder)
#   chroot    as root, sessions are chrooted into root/ (ForceCommand internal-sftp + ChrootDirectory): clients see
#             it as "/". sshd demands that every folder above it is root-owned and not group/other-writable (so no
#             state under /tmp; use a folder under ~/.cache). FLOW_BEAM_SFTP_CHROOT=0 (or a non-root user) uses
#             `internal-sftp -d root/` instead: clients start there but can reach the whole file system.
# Needs /usr/sbin/sshd and ssh-keygen: `install` runs apt-get install openssh-server when missing (with a
# policy-rc.d that keeps Debian from starting the system sshd).
# Measured here (2 cores): cold install (apt-get update + openssh-server) ~23 s; warm install ~0.01 s;
# start (keys generated on the first start) ~0.8 s; stop ~1.3 s; disk ~5 MB of Debian packages, keys a few KB.
set -euo pipefail
# shellcheck disable=SC2034  # read by lib/common.sh
FB_COMPONENT=sftp
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
# shellcheck source=lib/server.sh
. "$HERE/lib/server.sh"

PORT="${FLOW_BEAM_SFTP_PORT:-19522}"
SFTP_USER="${FLOW_BEAM_SFTP_USER:-$(id -un)}"
STATE="$FB_STATE_ROOT/sftp"
ROOT="$STATE/root"
CONFIG="$STATE/sshd_config"
PIDFILE="$STATE/sshd.pid"
LOG="$STATE/server.log"
MARKER="$CONFIG"
TIMEOUT="${FLOW_BEAM_START_TIMEOUT:-30}"
WHAT="OpenSSH SFTP on 127.0.0.1:$PORT (user $SFTP_USER, root $ROOT)"
SSHD=/usr/sbin/sshd
CHROOT="${FLOW_BEAM_SFTP_CHROOT:-1}"
[ "$(id -u)" = 0 ] || CHROOT=0

install() {
  if [ -x "$SSHD" ] && command -v ssh-keygen >/dev/null 2>&1; then return 0; fi
  [ "$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1 \
    || fb_die "$SSHD is missing and this user cannot apt-get install openssh-server (no root, no sudo)"
  fb_log "installing Debian's openssh-server (apt-get)"
  local policy=/usr/sbin/policy-rc.d made=""
  if [ ! -e "$policy" ] && [ "$(id -u)" = 0 ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made=1  # do not start the system sshd
  fi
  fb_apt_install openssh-server || { [ -z "$made" ] || rm -f "$policy"; fb_die "apt-get install openssh-server failed"; }
  [ -z "$made" ] || rm -f "$policy"
  [ -x "$SSHD" ] || fb_die "apt-get installed openssh-server but $SSHD is missing"
}

check_chroot_path() {
  local d="$ROOT" owner mode
  while [ -n "$d" ] && [ "$d" != / ]; do
    owner="$(stat -c %u "$d")"; mode="$(stat -c %a "$d")"
    if [ "$owner" != 0 ] || [ $((8#$mode & 8#022)) != 0 ]; then
      fb_die "sshd's ChrootDirectory needs every folder above $ROOT owned by root and not group/other-writable, and $d is not (owner uid $owner, mode $mode): put FLOW_BEAM_STATE under such a folder (e.g. ~/.cache/flow-beam/run) or set FLOW_BEAM_SFTP_CHROOT=0"
    fi
    d="$(dirname "$d")"
  done
}

prepare() {
  mkdir -p "$ROOT"
  chmod 755 "$STATE" "$ROOT"
  [ -f "$STATE/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C flow-beam-sftp-host -f "$STATE/ssh_host_ed25519_key"
  [ -f "$STATE/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C flow-beam-sftp-client -f "$STATE/client_ed25519"
  cp "$STATE/client_ed25519.pub" "$STATE/authorized_keys"
  chmod 600 "$STATE/authorized_keys" "$STATE/client_ed25519" "$STATE/ssh_host_ed25519_key"
  echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$STATE/ssh_host_ed25519_key.pub")" >"$STATE/known_hosts"
  local force="ForceCommand internal-sftp -d /"
  if [ "$CHROOT" = 1 ]; then
    check_chroot_path
  else
    force="ForceCommand internal-sftp -d $ROOT"
  fi
  cat >"$CONFIG" <<CONF
# written by scripts/sftp.sh start: do not edit (rewritten on every start)
Port $PORT
ListenAddress 127.0.0.1
HostKey $STATE/ssh_host_ed25519_key
PidFile none
AuthorizedKeysFile $STATE/authorized_keys
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
UsePAM no
PermitRootLogin prohibit-password
StrictModes no
AllowUsers $SFTP_USER
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTTY no
PermitTunnel no
MaxStartups 100:30:200
LogLevel VERBOSE
Subsystem sftp internal-sftp
$force
$([ "$CHROOT" = 1 ] && echo "ChrootDirectory $ROOT")
CONF
  if [ "$(id -u)" = 0 ]; then mkdir -p /run/sshd && chmod 755 /run/sshd; fi  # privilege separation folder
  "$SSHD" -t -f "$CONFIG" >>"$LOG" 2>&1 || { echo "[sftp] ERROR: sshd rejected $CONFIG" >&2; fb_tail_log "$LOG"; exit 1; }
}

launch() {
  prepare
  fb_spawn "$PIDFILE" "$LOG" "$SSHD" -D -e -f "$CONFIG" -p "$PORT" -o ListenAddress=127.0.0.1
}

# the SSH banner arrives
answers() {
  fb_port_open "$PORT" && timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; head -c 7 <&3" 2>/dev/null | grep -q '^SSH-2.0'
}

# Every descendant of PID (from /proc: no procps needed).
descendants() {
  local f line rest pid ppid
  for f in /proc/[0-9]*/stat; do
    read -r line <"$f" 2>/dev/null || continue
    pid="${line%% *}"; rest="${line##*) }"; ppid="$(echo "$rest" | cut -d' ' -f2)"
    if [ "$ppid" = "$1" ]; then echo "$pid"; descendants "$pid"; fi
  done
}

# sshd puts each connection in a session of its own (setsid), outside the listener's process group: stop kills
# the listener's group and every process descended from it, so no open SFTP session outlives `stop`.
sftp_stop() {
  local pid kids k i
  if pid="$(fb_pid_alive "$PIDFILE" "$MARKER")"; then
    kids="$(descendants "$pid")"
    fb_kill_group "$PIDFILE" "$MARKER" 10
    for k in $kids; do kill -TERM "$k" 2>/dev/null || true; done
    for ((i = 0; i < 25; i++)); do
      local alive=""
      for k in $kids; do kill -0 "$k" 2>/dev/null && alive=1; done
      [ -n "$alive" ] || break
      sleep 0.2
    done
    for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
    fb_log "stopped"
  else
    rm -f "$PIDFILE"
    fb_log "not running"
  fi
}

env_lines() {
  echo "export FLOW_BEAM_SFTP_HOST=127.0.0.1"
  echo "export FLOW_BEAM_SFTP_PORT=$PORT"
  echo "export FLOW_BEAM_SFTP_USER=$SFTP_USER"
  echo "export FLOW_BEAM_SFTP_KEY=$STATE/client_ed25519"
  echo "export FLOW_BEAM_SFTP_KNOWN_HOSTS=$STATE/known_hosts"
  echo "export FLOW_BEAM_SFTP_ROOT=$ROOT"
}

case "${1:-}" in
  stop) sftp_stop ;;
  *) fb_server_main "$@" ;;
esac
