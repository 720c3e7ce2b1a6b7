// The baseline's payment scenario: 100 users each pay an order of 3 products × 10
// (stock 1000 each, so the run empties it exactly). Orders are created in setup();
// only the payments are measured (metric `payment`). Run by k6/payment-bench.sh, which
// seeds fresh products and audits invariants 1-5 afterwards.
//
//   BASE_URL · PRODUCTS (comma-separated ids, default 1,2,3) · USERS (default 100)
//   FIRST_USER (default 1)
import http from 'k6/http';
import { check, fail } from 'k6';
import { Trend, Counter } from 'k6/metrics';
import { as, mintTokens, users } from './auth.js';
import { spanned } from './rush.js';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:3000';
const PRODUCTS = (__ENV.PRODUCTS || '1,2,3').split(',').map(Number);
const USERS = parseInt(__ENV.USERS || '100', 10);
const FIRST = parseInt(__ENV.FIRST_USER || '1', 10);

const payment = new Trend('payment', true);
const paid = new Counter('payments_succeeded');
const refused = new Counter('payments_refused');

export const options = {
  scenarios: { pay: { executor: 'per-vu-iterations', vus: USERS, iterations: 1, maxDuration: '2m' } },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
  thresholds: { payments_refused: ['count==0'] },
  setupTimeout: '120s',
};

export function setup() {
  const tokens = mintTokens(BASE, users(FIRST, USERS));
  const products = PRODUCTS.map((productId) => ({ productId, quantity: 10 }));
  const requests = [];
  for (let i = 0; i < USERS; i++) {
    requests.push(['POST', `${BASE}/api/v1/orders`, JSON.stringify({ userId: FIRST + i, products }), as(tokens, FIRST + i)]);
  }
  const orders = http.batch(requests).map((r) => {
    if (r.status !== 201) fail(`create order: ${r.status} ${r.body}`);
    return r.json('orderId');
  });
  return { orders, tokens };
}

export default function (data) {
  spanned(() => unit(data));
}

// One user's part of the rush.
function unit(data) {
  const user = FIRST + __VU - 1;
  const order = data.orders[__VU - 1];
  const response = http.post(`${BASE}/api/v1/payment`, JSON.stringify({ userId: user, orderId: order }), as(data.tokens, user));
  payment.add(response.timings.duration);
  if (response.status === 200) paid.add(1);
  else refused.add(1);
  check(response, { 'paid': (r) => r.status === 200 });
}

export function teardown() {
  for (const product of PRODUCTS) {
    const stock = http.get(`${BASE}/api/v1/products/${product}`).json('stock');
    console.log(`product ${product}: stock ${stock}`);
  }
}
