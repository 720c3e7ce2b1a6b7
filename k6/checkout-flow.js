// The baseline's end-to-end flow: each of 100 users issues a coupon, creates an order
// with it, and pays. The whole flow is timed (metric `flow`). Run by
// k6/payment-bench.sh with a fresh coupon of 100 units and a fresh product.
// With CANCEL_EVERY=n, every n-th user then cancels the paid order (a refund: money,
// stock and coupon back), timed as `cancel` and counted in `refunds`.
//
//   BASE_URL · COUPON_ID · PRODUCT_ID · USERS (default 100) · FIRST_USER (default 1)
//   · CANCEL_EVERY (default 0: nobody cancels)
import http from 'k6/http';
import { check } from 'k6';
import { Trend, Counter } from 'k6/metrics';
import { as, mintTokens, users } from './auth.js';
import { spanned } from './rush.js';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:3000';
const COUPON = parseInt(__ENV.COUPON_ID || '1', 10);
const PRODUCT = parseInt(__ENV.PRODUCT_ID || '1', 10);
const USERS = parseInt(__ENV.USERS || '100', 10);
const FIRST = parseInt(__ENV.FIRST_USER || '1', 10);
const CANCEL_EVERY = parseInt(__ENV.CANCEL_EVERY || '0', 10);

const flow = new Trend('flow', true);
const cancelTime = new Trend('cancel', true);
const completed = new Counter('flows_completed');
const broken = new Counter('flows_broken');
const refunds = new Counter('refunds');

export const options = {
  scenarios: { checkout: { executor: 'per-vu-iterations', vus: USERS, iterations: 1, maxDuration: '2m' } },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
  thresholds: { flows_broken: ['count==0'] },
};

export function setup() {
  return { tokens: mintTokens(BASE, users(FIRST, USERS)) };
}

export default function (data) {
  spanned(() => unit(data));
}

// One user's part of the rush.
function unit(data) {
  const user = FIRST + __VU - 1;
  const params = as(data.tokens, user);
  const started = Date.now();
  const coupon = http.post(`${BASE}/api/v1/coupons/${COUPON}?userId=${user}`, null, params);
  const order = http.post(
    `${BASE}/api/v1/orders`,
    JSON.stringify({ userId: user, products: [{ productId: PRODUCT, quantity: 1 }], couponId: COUPON }),
    params,
  );
  const paid = order.status === 201
    ? http.post(`${BASE}/api/v1/payment`, JSON.stringify({ userId: user, orderId: order.json('orderId') }), params)
    : order;
  const cancels = CANCEL_EVERY > 0 && __VU % CANCEL_EVERY === 0 && paid.status === 200;
  let cancelled = null;
  if (cancels) {
    const asked = Date.now();
    cancelled = http.post(`${BASE}/api/v1/orders/${order.json('orderId')}/cancel`, null, params);
    cancelTime.add(Date.now() - asked);
  }
  flow.add(Date.now() - started);
  const ok = check(null, {
    'coupon 201': () => coupon.status === 201,
    'order 201': () => order.status === 201,
    'payment 200': () => paid.status === 200,
    'cancel refunds': () => !cancels || (cancelled.status === 200 && cancelled.json('status') === 'REFUNDED'),
  });
  if (cancels && ok) refunds.add(1);
  if (ok) completed.add(1);
  else broken.add(1);
}
