// The baseline's top-5 scenario: 100 virtual users read GET /api/v1/products/top for
// DURATION. k6/top-bench.sh runs it against an API with the Redis cache and one
// without. setup() pays a few orders first (SEED_SALES=1) so the answer is not empty.
//
//   BASE_URL · DURATION (default 20s) · VUS (default 100) · SEED_SALES (default 1)
import http from 'k6/http';
import { check, fail } from 'k6';
import { as, mintTokens, users } from './auth.js';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:3000';

export const options = {
  scenarios: {
    read: { executor: 'constant-vus', vus: parseInt(__ENV.VUS || '100', 10), duration: __ENV.DURATION || '20s' },
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
  thresholds: { http_req_failed: ['rate==0'] },
  setupTimeout: '60s',
};

export function setup() {
  if ((__ENV.SEED_SALES || '1') !== '1') return;
  // Users 901..920 buy product i, i times: a known ranking (20, 19, 18, 17, 16).
  const tokens = mintTokens(BASE, users(901, 20));
  for (let i = 1; i <= 20; i++) {
    const user = 900 + i;
    const order = http.post(`${BASE}/api/v1/orders`, JSON.stringify({ userId: user, products: [{ productId: i, quantity: i }] }), as(tokens, user));
    if (order.status !== 201) fail(`order: ${order.status} ${order.body}`);
    const paid = http.post(`${BASE}/api/v1/payment`, JSON.stringify({ userId: user, orderId: order.json('orderId') }), as(tokens, user));
    if (paid.status !== 200) fail(`pay: ${paid.status} ${paid.body}`);
  }
}

export default function () {
  const response = http.get(`${BASE}/api/v1/products/top`);
  check(response, { 'top 5': (r) => r.status === 200 && r.json('items').length === 5 });
}
