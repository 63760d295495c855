#!/usr/bin/env bash
# An FTP server on 127.0.0.1: pyftpdlib (PyPI) serving one folder, run by scripts/ftpserver.py, for the ftp connector.
#   bash scripts/ftp.sh install|start|stop|status|env
#   port      FLOW_BEAM_FTP_PORT (default 19521); passive data ports FLOW_BEAM_FTP_PASSIVE_PORTS (default 19540-19549)
#   account   FLOW_BEAM_FTP_USER (default flowbeam; full rights) and FLOW_BEAM_FTP_USER-ro (list and read only),
#             both with password FLOW_BEAM_FTP_PASSWORD (default flowbeam-ftp; passed by environment, never argv)
#   venv      $FLOW_BEAM_CACHE/venvs/pyftpdlib (pyftpdlib only; the product never imports it)
#   state     $FLOW_BEAM_STATE/ftp (default ~/.cache/flow-beam/run/ftp): ftp.pid, server.log, root/ (the served folder)
# Clients: ftplib / fsspec's FTPFileSystem with the FLOW_BEAM_FTP_* variables `env` prints. Plain FTP (no TLS):
# for loopback tests only.
# Measured here (2 cores): cold install (venv + pip from a warm pip cache) ~22 s; warm install ~0.01 s;
# start ~0.6 s; stop ~1.9 s; disk 27 MB (the venv).
set -euo pipefail
# shellcheck disable=SC2034  # read by lib/common.sh
FB_COMPONENT=ftp
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
# shellcheck source=lib/server.sh
. "$HERE/lib/server.sh"

PORT="${FLOW_BEAM_FTP_PORT:-19521}"
PASSIVE="${FLOW_BEAM_FTP_PASSIVE_PORTS:-19540-19549}"
FTP_USER="${FLOW_BEAM_FTP_USER:-flowbeam}"
export FLOW_BEAM_FTP_PASSWORD="${FLOW_BEAM_FTP_PASSWORD:-flowbeam-ftp}"
VENV="$FB_CACHE/venvs/pyftpdlib"
STATE="$FB_STATE_ROOT/ftp"
ROOT="$STATE/root"
PIDFILE="$STATE/ftp.pid"
LOG="$STATE/server.log"
MARKER="ftpserver.py"
TIMEOUT="${FLOW_BEAM_START_TIMEOUT:-30}"
WHAT="pyftpdlib FTP on 127.0.0.1:$PORT (passive $PASSIVE, root $ROOT)"

[[ "$PASSIVE" =~ ^[0-9]+-[0-9]+$ ]] || fb_die "FLOW_BEAM_FTP_PASSIVE_PORTS must be A-B, not '$PASSIVE'"

install() { fb_venv "$VENV" "pyftpdlib>=2,<3"; }

launch() {
  mkdir -p "$ROOT"
  fb_spawn "$PIDFILE" "$LOG" "$VENV/bin/python" -u "$HERE/$MARKER" --port "$PORT" --root "$ROOT" --user "$FTP_USER" \
    --password-env FLOW_BEAM_FTP_PASSWORD --passive "$PASSIVE"
}

# the FTP greeting arrives
answers() {
  fb_port_open "$PORT" && timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; head -c 3 <&3" 2>/dev/null | grep -q '^220'
}

env_lines() {
  echo "export FLOW_BEAM_FTP_HOST=127.0.0.1"
  echo "export FLOW_BEAM_FTP_PORT=$PORT"
  echo "export FLOW_BEAM_FTP_USER=$FTP_USER"
  echo "export FLOW_BEAM_FTP_PASSWORD='$FLOW_BEAM_FTP_PASSWORD'"
  echo "export FLOW_BEAM_FTP_RO_USER=$FTP_USER-ro"
  echo "export FLOW_BEAM_FTP_ROOT=$ROOT"
}

fb_server_main "$@"
