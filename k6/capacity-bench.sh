#!/usr/bin/env bash
# The capacity benchmark: what one coupon issues a second under the DynamoDB capacity
# model, unsharded and sharded, side by side. Run it inside a stack of its own with the
# model on (`make bench-capacity` does):
#
#   CAPACITY=aws CAPACITY_SCALE=0.05 localstack/with-stack.sh k6/capacity-bench.sh
#
# At scale s a partition takes 1,000·s write units a second, and an issue's count write
# costs 2 (a transaction), so one counter item issues at most 500·s copies a second:
# the "ceiling". Each run asks for CAPACITY_RATE issues a second (default 12 ceilings),
# every request from a user of its own, for CAPACITY_SECONDS (default 60), against a
# coupon that holds more than that: every answer should be a 201. It prints, per run,
# the rate of 201s against the ceiling, p99, the throttles the model answered (which
# the functions absorbed by retrying) and the 503s that reached the client, then audits
# both coupons from the table.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ -n "${CAPACITY_METRICS_URL:-}" ] || {
  echo "no capacity model: run CAPACITY=aws localstack/with-stack.sh $0 (or make bench-capacity)" >&2
  exit 1
}
BIN="$ROOT/target/${RUSHCART_PROFILE:-local}"
export TABLE_NAME=rushcart-main RUSHCART_TABLE_PREFIX=rushcart RUST_LOG=warn
SCALE="${CAPACITY_SCALE:-1}"
SECS="${CAPACITY_SECONDS:-60}"
CEILING=$(python3 -c "print(500 * $SCALE)")
RATE="${CAPACITY_RATE:-$(python3 -c "import math; print(math.ceil(12 * $CEILING))")}"
USERS=$(( RATE * SECS * 11 / 10 + 100 ))
PORT="${CAPACITY_PORT:-3201}"

echo "scale $SCALE: a partition takes $(python3 -c "print(1000 * $SCALE)") write units/s; one counter item issues $CEILING/s"
echo "each run: $RATE issues/s for $SECS s, $USERS users seeded per run"
"$BIN/rushcart-admin" provision >/dev/null
# Coupon 1 counts on its own item; coupon 2 in the shards its total gets by default.
"$BIN/rushcart-admin" seed --users $(( 2 * USERS )) --products 0 --coupons 1 --first-coupon 1 \
  --coupon-quantity "$USERS" --coupon-shards 1 >/dev/null
"$BIN/rushcart-admin" seed --users 0 --products 0 --coupons 1 --first-coupon 2 --coupon-quantity "$USERS" >/dev/null

AUTH=off THROTTLE=off COUPON_GATE=off PORT=$PORT "$BIN/rushcart-local-api" >"${RUSHCART_STACK_DIR:-/tmp}/capacity-api.log" 2>&1 &
api=$!
trap 'kill $api 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

mkdir -p "$ROOT/k6/results"
run() { # label coupon first-user
  local out="$ROOT/k6/results/capacity-$2-$(date -u +%Y%m%dT%H%M%SZ).json"
  local before after
  before=$(curl -s "$CAPACITY_METRICS_URL")
  BASE_URL="http://127.0.0.1:$PORT" COUPON_ID=$2 RATE=$RATE SECONDS=$SECS FIRST_USER=$3 \
    "$ROOT/.venv/bin/k6" run --quiet --summary-export "$out" "$ROOT/k6/capacity-coupon.js" >/dev/null
  after=$(curl -s "$CAPACITY_METRICS_URL")
  shards=$(curl -s "http://127.0.0.1:$PORT/api/v1/coupons/$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["shards"])')
  python3 - "$out" "$1" "$CEILING" "$SECS" "$shards" "$before" "$after" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
label, ceiling, secs, shards = sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
before, after = json.loads(sys.argv[6]), json.loads(sys.argv[7])
issued = m.get("coupons_issued", {}).get("count", 0)
unavailable = m.get("coupons_unavailable", {}).get("count", 0)
other = m.get("coupons_other_answers", {}).get("count", 0)
d = m["issue"]
throttled = after["requests"]["throttled"] - before["requests"]["throttled"]
rate = issued / secs
print(f"{label:<24} shards {shards:>2}  {rate:7.1f} issued/s = {rate / ceiling:5.2f}× the ceiling  "
      f"p99 {d['p(99)']:7.1f} ms  throttled {throttled:6d}  503 {unavailable:6d}  other {other}")
PY
}
run "one counter item" 1 1
run "sharded by default" 2 $(( USERS + 1 ))
kill $api 2>/dev/null || true
"$BIN/rushcart-admin" audit --users 0 --coupon 1 --coupon 2
