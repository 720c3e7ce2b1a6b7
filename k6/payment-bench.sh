#!/usr/bin/env bash
# The payment benchmarks against a running `make run`: seeds three fresh products with
# stock 1000, runs k6/payment.js (100 users × 3 products × 10), then seeds a fresh
# coupon of 100 and a fresh product and runs k6/checkout-flow.js (100 users: coupon →
# order → pay), the same flow with every third user cancelling the paid order (a
# refund), then audits invariants 1-5 and 8 from the database.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_FILE="${RUSHCART_STACK_ENV:-$ROOT/.local/run/stack.env}"
[ -f "$ENV_FILE" ] || { echo "no running stack ($ENV_FILE): start 'make run' first" >&2; exit 1; }
set -a; . "$ENV_FILE"; set +a
export RUSHCART_TABLE_PREFIX=rushcart
BIN="$ROOT/target/${RUSHCART_PROFILE:-local}"
BASE_URL="${BASE_URL:-http://127.0.0.1:${PORT:-3000}}"
first=$(( $(date +%s) % 100000 * 10 + 1000 ))
"$BIN/rushcart-admin" seed --users 1000 --products 4 --first-product "$first" --stock 1000 \
  --coupons 2 --first-coupon "$first" --coupon-quantity 100 >/dev/null
# The refund flow's product costs more than the coupon takes off: its refunds move money.
"$BIN/rushcart-admin" seed --users 0 --products 1 --first-product "$((first + 4))" --price 1500.00 \
  --stock 1000 --coupons 0 >/dev/null
mkdir -p "$ROOT/k6/results"

figures() { # file metric label
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
d = m[sys.argv[2]]; reqs = m["http_reqs"]; failed = m["http_req_failed"]
it = m["iterations"]
rate = f"{it['rate']:6.1f} /s" if sys.argv[2] != "cancel" else " " * 9
print(f"{sys.argv[3]:<32} {rate}  avg {d['avg']:7.1f} ms  p90 {d['p(90)']:7.1f} ms  "
      f"p99 {d['p(99)']:7.1f} ms  http errors {100*failed['value']:.2f}% of {int(reqs['count'])}")
PY
}
out="$ROOT/k6/results/payment-$(date -u +%Y%m%dT%H%M%SZ).json"
BASE_URL=$BASE_URL PRODUCTS="$first,$((first + 1)),$((first + 2))" \
  "$ROOT/.venv/bin/k6" run --quiet --summary-export "$out" "$ROOT/k6/payment.js" 2>&1 | grep -E "stock|✗" || true
figures "$out" payment "payment (100 users, 3 × 10)"
out="$ROOT/k6/results/checkout-$(date -u +%Y%m%dT%H%M%SZ).json"
BASE_URL=$BASE_URL COUPON_ID=$first PRODUCT_ID=$((first + 3)) FIRST_USER=101 \
  "$ROOT/.venv/bin/k6" run --quiet --summary-export "$out" "$ROOT/k6/checkout-flow.js" 2>&1 | grep -E "✗" || true
figures "$out" flow "checkout flow (100 users)"
out="$ROOT/k6/results/refund-$(date -u +%Y%m%dT%H%M%SZ).json"
BASE_URL=$BASE_URL COUPON_ID=$((first + 1)) PRODUCT_ID=$((first + 4)) FIRST_USER=201 CANCEL_EVERY=3 \
  "$ROOT/.venv/bin/k6" run --quiet --summary-export "$out" "$ROOT/k6/checkout-flow.js" 2>&1 | grep -E "✗" || true
figures "$out" flow "flow, 1 in 3 refunded (100 users)"
figures "$out" cancel "  of which the refunds alone"
"$BIN/rushcart-admin" audit --users 300 --coupon "$first" --coupon "$((first + 1))" --orders
