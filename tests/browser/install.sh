#!/usr/bin/env bash
# Installs what the browser test needs, and nothing that is already there, so a second
# run is cheap (no network):
#   - Debian: chromium (/usr/bin/chromium). Playwright's own browser download does not
#     work on this project's machines, so Playwright drives Debian's Chromium instead.
#   - npm:    playwright-core (no browser download), pinned, into .local/browser
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="$ROOT/.local/browser"
PLAYWRIGHT_VERSION=1.64.1

log() { printf '[browser-install] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x /usr/bin/chromium ]; then
  log "apt-get install chromium"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
fi
[ -x /usr/bin/chromium ] || { log "/usr/bin/chromium is still missing after apt-get"; exit 1; }

installed="$(node -p "require('$DIR/node_modules/playwright-core/package.json').version" 2>/dev/null || true)"
if [ "$installed" != "$PLAYWRIGHT_VERSION" ]; then
  log "npm install playwright-core@$PLAYWRIGHT_VERSION into .local/browser"
  mkdir -p "$DIR"
  [ -f "$DIR/package.json" ] || echo '{"private": true}' >"$DIR/package.json"
  # playwright-core never downloads a browser; the variable only makes that explicit.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund \
    --prefix "$DIR" "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null
fi
log "ready: $(/usr/bin/chromium --version 2>/dev/null | head -1), playwright-core $PLAYWRIGHT_VERSION"
