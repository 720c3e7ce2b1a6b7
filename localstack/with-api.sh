#!/usr/bin/env bash
# Runs a command against a local API of its own, on a fresh local stack, then stops
# both, whatever the command's outcome:
#   localstack/with-api.sh tests/fuzz/fuzz.sh
# The command sees RUSHCART_API (the API's base URL). The stack is provisioned and
# seeded with a small set (users 1..20 with 1000000.00 each, products 1..10, coupon
# 1); sign-in is on (AUTH=off in the environment turns it off) and the feed is off.
# Uses the debug binaries that `cargo build --workspace` (make test) leaves.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/target/debug"
for binary in rushcart-local-api rushcart-admin; do
  [ -x "$BIN/$binary" ] || { echo "with-api: $BIN/$binary is missing: run cargo build --workspace first" >&2; exit 1; }
done

if [ -z "${RUSHCART_STACK_DIR:-}" ]; then
  exec "$ROOT/localstack/with-stack.sh" "$0" "$@"
fi

# Inside the stack: a free port, then the API on it.
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export RUSHCART_TABLE_PREFIX=rushcart TABLE_NAME=rushcart-main PORT FEED=off
export RUSHCART_TEMPLATE="${RUSHCART_TEMPLATE:-$ROOT/template.yaml}"
export SWAGGER_UI_DIR="${SWAGGER_UI_DIR:-$ROOT/.local/swagger-ui/node_modules/swagger-ui-dist}"
"$BIN/rushcart-admin" provision >/dev/null
"$BIN/rushcart-admin" seed --users 20 --products 10 >/dev/null
LOG="$RUSHCART_STACK_DIR/api.log"
"$BIN/rushcart-local-api" >"$LOG" 2>&1 &
api_pid=$!
trap 'kill "$api_pid" 2>/dev/null || true; wait "$api_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  kill -0 "$api_pid" 2>/dev/null || { echo "with-api: the API exited during start-up:" >&2; cat "$LOG" >&2; exit 1; }
  sleep 0.1
done
export RUSHCART_API="http://127.0.0.1:$PORT"
echo "with-api: $RUSHCART_API (log: $LOG)" >&2
status=0
"$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "with-api: '$*' failed ($status); the API's last log lines:" >&2
  tail -n 20 "$LOG" >&2
fi
exit "$status"
