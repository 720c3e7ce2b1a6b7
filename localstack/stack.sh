#!/usr/bin/env bash
# The local AWS stack, all on loopback and on free ports:
#   rushcart-dynamodb (dynoxide, DynamoDB and its stream, in memory) · moto's server for
#   SQS and Kinesis · redis-server (no disk).
#
#   localstack/stack.sh start [DIR]   start the three, wait until they answer, write DIR/stack.env
#   localstack/stack.sh stop  [DIR]   stop what DIR/pids lists
#
# DIR (default .local/stack) holds pids, logs and stack.env, so several stacks can run
# side by side (make run and make test at once). The env file carries the endpoints in
# the variables the AWS SDK reads (AWS_ENDPOINT_URL_<SERVICE>) plus REDIS_URL.
#
# The engine's binary is $RUSHCART_DYNAMODB_BIN when set; otherwise it is built here
# with cargo's profile $RUSHCART_PROFILE (default dev: the engine and SQLite are
# optimised even there, see Cargo.toml).
#
# CAPACITY=aws also starts the capacity model (rushcart-capacity, localstack/capacity)
# in front of the engine and points AWS_ENDPOINT_URL_DYNAMODB at it: hot partitions are
# throttled as DynamoDB throttles them (CAPACITY_SCALE, CAPACITY_TABLE_MAX; see
# docs/local-stack.md). Its binary is $RUSHCART_CAPACITY_BIN when set, otherwise built
# like the engine's. Unset (or CAPACITY=off), nothing sits between the stack and the engine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cmd="${1:-}"
DIR="${2:-$ROOT/.local/stack}"

log() { printf '[stack] %s\n' "$*" >&2; }

# N distinct free ports, all bound at once before any is let go: asked one at a time,
# the kernel may hand out a port it just gave back (the engine and redis-server once got
# the same one, and the engine's client talked to redis).
free_ports() { # count
  python3 -c 'import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in held))' "$1"
}

wait_for_port() { # name port pid
  local name=$1 port=$2 pid=$3
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited during start-up; its log:"; tail -20 "$DIR/$name.log" >&2; return 1
    fi
    sleep 0.1
  done
  log "$name did not open port $port within 30 s"; return 1
}

built_bin() { # package [prebuilt binary]
  local package=$1 prebuilt=${2:-}
  if [ -n "$prebuilt" ]; then echo "$prebuilt"; return; fi
  local profile="${RUSHCART_PROFILE:-dev}" dir
  cargo build -q --profile "$profile" -p "$package" >&2
  dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
  echo "${CARGO_TARGET_DIR:-$ROOT/target}/$dir/$package"
}

engine_bin() { built_bin rushcart-dynamodb "${RUSHCART_DYNAMODB_BIN:-}"; }
capacity_bin() { built_bin rushcart-capacity "${RUSHCART_CAPACITY_BIN:-}"; }

start() {
  [ -x "$ROOT/.venv/bin/moto_server" ] && command -v redis-server >/dev/null || "$ROOT/localstack/install.sh"
  local engine capacity="" cap_port=""
  engine=$(engine_bin)
  [ -x "$engine" ] || { log "the engine $engine is missing"; exit 1; }
  case "${CAPACITY:-off}" in
    aws)
      capacity=$(capacity_bin)
      [ -x "$capacity" ] || { log "the capacity model $capacity is missing"; exit 1; }
      ;;
    off) ;;
    *) log "CAPACITY=${CAPACITY}: say aws for the capacity model, or off (the default)"; exit 2 ;;
  esac
  if [ -f "$DIR/pids" ]; then stop; fi
  mkdir -p "$DIR"
  local ddb_port moto_port redis_port spare_port
  read -r ddb_port moto_port redis_port spare_port <<<"$(free_ports 4)"

  "$engine" --port "$ddb_port" >"$DIR/dynamodb.log" 2>&1 &
  echo "dynamodb $!" >>"$DIR/pids"
  if [ -n "$capacity" ]; then
    cap_port=$spare_port
    # Its scale and ceiling come from CAPACITY_SCALE and CAPACITY_TABLE_MAX; an empty
    # one means the default.
    [ -n "${CAPACITY_SCALE:-}" ] || unset CAPACITY_SCALE
    [ -n "${CAPACITY_TABLE_MAX:-}" ] || unset CAPACITY_TABLE_MAX
    "$capacity" --listen "127.0.0.1:$cap_port" --upstream "http://127.0.0.1:$ddb_port" >"$DIR/capacity.log" 2>&1 &
    echo "capacity $!" >>"$DIR/pids"
  fi
  # moto's own server, with its Kinesis puts made safe for concurrency (see the file).
  "$ROOT/.venv/bin/python" "$ROOT/localstack/moto_server.py" -H 127.0.0.1 -p "$moto_port" >"$DIR/moto.log" 2>&1 &
  echo "moto $!" >>"$DIR/pids"
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
      --protected-mode yes --daemonize no >"$DIR/redis.log" 2>&1 &
  echo "redis $!" >>"$DIR/pids"

  while read -r name pid; do
    case $name in
      dynamodb) port=$ddb_port ;; capacity) port=$cap_port ;; moto) port=$moto_port ;; redis) port=$redis_port ;;
    esac
    wait_for_port "$name" "$port" "$pid" || { stop; exit 1; }
  done <"$DIR/pids"
  # A port that answers is not proof its process took it: one that lost the bind has
  # exited by now, and another process answers in its place.
  sleep 0.2
  while read -r name pid; do
    kill -0 "$pid" 2>/dev/null || { log "$name exited during start-up; its log:"; tail -20 "$DIR/$name.log" >&2; stop; exit 1; }
  done <"$DIR/pids"

  # With the capacity model, DynamoDB's endpoint is the model's; the stream is read from
  # the engine directly (the model would pass it through untouched anyway).
  cat >"$DIR/stack.env" <<ENV
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=rushcartlocal
AWS_SECRET_ACCESS_KEY=rushcartlocal
AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:${cap_port:-$ddb_port}
AWS_ENDPOINT_URL_DYNAMODB_STREAMS=http://127.0.0.1:$ddb_port
AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$moto_port
AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$moto_port
REDIS_URL=redis://127.0.0.1:$redis_port
ENV
  local model=""
  if [ -n "$cap_port" ]; then
    echo "CAPACITY_METRICS_URL=http://127.0.0.1:$cap_port/_capacity/metrics" >>"$DIR/stack.env"
    model=" · capacity model :$cap_port (scale ${CAPACITY_SCALE:-1}, table max ${CAPACITY_TABLE_MAX:-none}) in front of it"
  fi
  log "DynamoDB (dynoxide) :$ddb_port$model · moto (SQS, Kinesis) :$moto_port · redis :$redis_port → $DIR/stack.env"
}

stop() {
  [ -f "$DIR/pids" ] || return 0
  while read -r name pid; do
    kill "$pid" 2>/dev/null || true
  done <"$DIR/pids"
  while read -r name pid; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done <"$DIR/pids"
  rm -f "$DIR/pids" "$DIR/stack.env"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop [DIR]" >&2; exit 2 ;;
esac
