#!/usr/bin/env bash
# `make run`: install what is missing, start the local stack, provision, seed the demo
# data, and serve the API on http://127.0.0.1:${PORT:-3000} until Ctrl-C, which stops
# everything this script started.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PORT="${PORT:-3000}"
PROFILE="${RUSHCART_PROFILE:-local}"
DIR="$ROOT/.local/run"

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "port $PORT is in use; set PORT to another one (PORT=3001 make run)" >&2
  exit 1
fi

"$ROOT/localstack/install.sh"
# With CAPACITY=aws the stack puts the capacity model in front of the engine
# (docs/local-stack.md): built here with the rest, in the same profile.
packages=(-p rushcart-local-api -p rushcart-admin -p rushcart-dynamodb)
[ "${CAPACITY:-off}" = aws ] && packages+=(-p rushcart-capacity)
cargo build --profile "$PROFILE" "${packages[@]}"
BIN="$ROOT/target/$PROFILE"
export RUSHCART_DYNAMODB_BIN="$BIN/rushcart-dynamodb"
if [ "${CAPACITY:-off}" = aws ]; then export RUSHCART_CAPACITY_BIN="$BIN/rushcart-capacity"; fi

api_pid=""
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$api_pid" ]; then kill "$api_pid" 2>/dev/null || true; wait "$api_pid" 2>/dev/null || true; fi
  "$ROOT/localstack/stack.sh" stop "$DIR"
  echo "stopped" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$ROOT/localstack/stack.sh" start "$DIR"
set -a; . "$DIR/stack.env"; set +a
export RUSHCART_TABLE_PREFIX=rushcart TABLE_NAME=rushcart-main PORT RUSHCART_TEMPLATE="$ROOT/template.yaml"
"$BIN/rushcart-admin" provision --feed-env "$DIR/feed.env"
set -a; . "$DIR/feed.env"; set +a
"$BIN/rushcart-admin" seed "$@"

"$BIN/rushcart-local-api" &
api_pid=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  kill -0 "$api_pid" 2>/dev/null || { echo "the API exited during start-up" >&2; exit 1; }
  sleep 0.1
done
echo
if [ "${AUTH:-on}" = off ]; then
  echo "rushcart is ready: http://127.0.0.1:$PORT  (AUTH=off: no sign-in; try: curl http://127.0.0.1:$PORT/api/v1/users/1/balance)"
else
  echo "rushcart is ready: http://127.0.0.1:$PORT  (try: curl -H \"Authorization: Bearer \$(target/$PROFILE/rushcart-admin token --user 1)\" http://127.0.0.1:$PORT/api/v1/users/1/balance)"
fi
echo "stack endpoints: $DIR/stack.env · Ctrl-C stops everything"
wait "$api_pid"
