// Unloaded latency: one virtual user with a keep-alive connection makes ITERATIONS
// rounds of GET product, GET balance and an unkeyed charge of 1.00, one request at a
// time, so each figure is the route's own cost with nothing queued in front of it.
// tools/bench.py sets each beside the emulator's own round trips for the same calls.
// Each round also asks for a path no route takes: the gateway's own 404, which is the
// HTTP round trip alone (k6's client, the local API's server and gateway layer).
//
//   BASE_URL · USER_ID (default 1000) · PRODUCT_ID (default 1) · ITERATIONS (default 500)
import http from 'k6/http';
import { check } from 'k6';
import { Trend } from 'k6/metrics';
import { as, mintTokens } from './auth.js';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:3000';
const USER = parseInt(__ENV.USER_ID || '1000', 10);
const PRODUCT = __ENV.PRODUCT_ID || '1';

const product = new Trend('get_product', true);
const balance = new Trend('get_balance', true);
const charge = new Trend('charge', true);
const hop = new Trend('hop', true);

export const options = {
  scenarios: {
    one_client: { executor: 'per-vu-iterations', vus: 1, iterations: parseInt(__ENV.ITERATIONS || '500', 10) },
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
  thresholds: { http_req_failed: ['rate==0'] },
};

export function setup() {
  return { tokens: mintTokens(BASE, [USER]) };
}

export default function (data) {
  const read = http.get(`${BASE}/api/v1/products/${PRODUCT}`);
  product.add(read.timings.duration);
  const own = http.get(`${BASE}/api/v1/users/${USER}/balance`, as(data.tokens, USER));
  balance.add(own.timings.duration);
  const charged = http.post(`${BASE}/api/v1/users/${USER}/balance/charge`, JSON.stringify({ amount: '1.00' }),
    as(data.tokens, USER));
  charge.add(charged.timings.duration);
  const nowhere = http.get(`${BASE}/api/v1/no-such-route`, { responseCallback: http.expectedStatuses(404) });
  hop.add(nowhere.timings.duration);
  check(null, { 'all 200, and 404 for no route': () => read.status === 200 && own.status === 200
    && charged.status === 200 && nowhere.status === 404 });
}
