#!/usr/bin/env bash
# What the admin console's browser test needs: Debian's Chromium and the npm package
# playwright-core (from server/tests/browser/package-lock.json). Idempotent; fast when done.
#
#   scripts/setup-browser.sh
#
# Environment:
#   CHROMIUM   the browser to check (default /usr/bin/chromium; installed only when that is missing)
#
# Logs go to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BROWSER_DIR="$ROOT/server/tests/browser"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

log() { echo "setup-browser: $*" >&2; }

if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing Debian's chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    log "error: $CHROMIUM is missing; as root: apt-get install --no-install-recommends chromium"
    exit 1
  fi
fi

if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    log "installing Debian's nodejs and npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  else
    log "error: node and npm are missing; as root: apt-get install --no-install-recommends nodejs npm"
    exit 1
  fi
fi

if [ ! -f "$BROWSER_DIR/node_modules/playwright-core/package.json" ]; then
  log "npm ci in $BROWSER_DIR"
  (cd "$BROWSER_DIR" && npm ci --no-audit --no-fund >&2)
fi

log "ok: $("$CHROMIUM" --version 2>/dev/null || echo chromium), playwright-core $(node -p "require('$BROWSER_DIR/node_modules/playwright-core/package.json').version")"
