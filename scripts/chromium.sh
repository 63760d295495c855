#!/usr/bin/env bash
# Headless Chromium + chromedriver for the canvas tests (tests/test_canvas.py), from Debian's packages.
#   bash scripts/chromium.sh install   # apt-get install chromium chromium-driver (root; runs apt-get update once)
#   bash scripts/chromium.sh check     # exit 0 when both binaries are there
set -euo pipefail
have() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }
case "${1:-check}" in
  install)
    if have; then echo "chromium: $(chromium --version 2>/dev/null | head -1)"; exit 0; fi
    if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
      echo "chromium.sh: needs root and apt-get to install chromium chromium-driver; the canvas tests skip" >&2
      exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq chromium chromium-driver >/dev/null
    have && echo "chromium: $(chromium --version 2>/dev/null | head -1)"
    ;;
  check) have ;;
  *) echo "usage: $0 install|check" >&2; exit 2 ;;
esac
