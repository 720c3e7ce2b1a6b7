#!/usr/bin/env bash
# The browser test, end to end, on a fresh local stack of its own:
#   install what is missing (the stack's tools and Swagger UI's assets, Chromium,
#   playwright-core), start a throwaway stack (localstack/with-stack.sh), provision, seed
#   users 1..10 and products 1..5, serve the debug local API (sign-in on, feed off) on a
#   free port, run tests/browser/docs.spec.mjs against it, and stop everything, whatever
#   the outcome. Exits with the browser script's status.
#
#   tests/browser/run.sh                      (make test-browser)
#   RUSHCART_SCREENSHOT=path tests/browser/run.sh
#
# The binaries are target/debug/rushcart-local-api and rushcart-admin, which make test's
# `cargo build --workspace --all-targets` builds; RUSHCART_BIN names another folder
# (e.g. target/local). PORT picks the API's port (default: a free one). Logs of the last
# run stay in .local/browser/last-run/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BIN="${RUSHCART_BIN:-$ROOT/target/debug}"
LOGS="$ROOT/.local/browser/last-run"

log() { printf '[browser-run] %s\n' "$*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Inside the stack (localstack/with-stack.sh has exported its endpoints): data, API, test.
in_stack() {
  export RUSHCART_TABLE_PREFIX=rushcart TABLE_NAME=rushcart-main
  log "provision and seed (users 1..10, products 1..5)"
  if ! "$BIN/rushcart-admin" provision >"$LOGS/provision.log" 2>&1 \
    || ! "$BIN/rushcart-admin" seed --users 10 --products 5 >"$LOGS/seed.log" 2>&1; then
    log "provisioning or seeding failed; the end of its log:"
    tail -20 "$LOGS/provision.log" "$LOGS/seed.log" >&2 2>/dev/null || true
    return 1
  fi

  local port="" attempt
  api_pid="" # global: the EXIT trap reads it after this function has returned
  stop_api() {
    if [ -n "${api_pid:-}" ]; then
      kill "$api_pid" 2>/dev/null || true
      wait "$api_pid" 2>/dev/null || true
      api_pid=""
    fi
  }
  trap stop_api EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  # A free port can be taken between the look-up and the bind: try a few.
  for attempt in 1 2 3; do
    port="${PORT:-$(free_port)}"
    AUTH=on FEED=off PORT="$port" SWAGGER_UI_DIR="$ROOT/.local/swagger-ui/node_modules/swagger-ui-dist" \
      "$BIN/rushcart-local-api" >"$LOGS/api.log" 2>&1 &
    api_pid=$!
    for _ in $(seq 1 600); do # up to 60 s
      if curl -fsS -o /dev/null "http://127.0.0.1:$port/openapi.json" 2>/dev/null; then break 2; fi
      kill -0 "$api_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$api_pid" 2>/dev/null; then
      log "the API did not answer /openapi.json on :$port within 60 s; its log:"
      tail -20 "$LOGS/api.log" >&2
      return 1
    fi
    wait "$api_pid" 2>/dev/null || true
    api_pid=""
    log "the API exited during start-up (attempt $attempt, port $port); its log:"
    tail -20 "$LOGS/api.log" >&2
    [ -z "${PORT:-}" ] || return 1
  done
  [ -n "$api_pid" ] || return 1
  log "the API is up on http://127.0.0.1:$port (sign-in on)"

  local status=0
  RUSHCART_API="http://127.0.0.1:$port" node "$ROOT/tests/browser/docs.spec.mjs" || status=$?
  if [ "$status" -ne 0 ]; then
    log "the API's log ends:"
    tail -15 "$LOGS/api.log" >&2
  fi
  return "$status"
}

if [ "${1:-}" = --in-stack ]; then
  in_stack
  exit $?
fi

missing=()
for bin in rushcart-local-api rushcart-admin; do
  [ -x "$BIN/$bin" ] || missing+=("$BIN/$bin")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "missing: ${missing[*]}"
  log "build them first: cargo build -p rushcart-local-api -p rushcart-admin (make test builds them)"
  exit 2
fi
command -v node >/dev/null || { log "node is missing (Node.js 20 or later)"; exit 2; }

started=$(date +%s)
"$ROOT/localstack/install.sh"
"$ROOT/tests/browser/install.sh"
rm -rf "$LOGS"
mkdir -p "$LOGS"
status=0
"$ROOT/localstack/with-stack.sh" "$ROOT/tests/browser/run.sh" --in-stack || status=$?
if [ "$status" -eq 0 ]; then
  log "PASS in $(( $(date +%s) - started )) s"
else
  log "FAIL (status $status) in $(( $(date +%s) - started )) s; logs: $LOGS"
fi
exit "$status"
