// The incident drill's load (tools/drill.py): more than the route throttles let
// through, as in the baseline's incident — a coupon rush on top of browsing, while
// customers pay and read their balances. Open model (constant arrival rates), so an
// overloaded server shows up as latency and refusals, not as politely fewer requests.
//
//   rush      RUSH_RATE/s     POST /api/v1/coupons/1 by users 1..USERS, again and again
//   browse    BROWSE_RATE/s   products list (40%), one product (40%), top 5 (20%)
//   checkout  CHECKOUT_RATE/s create an order of one product, then pay it
//   balance   BALANCE_RATE/s  GET a user's balance
//
//   BASE_URL · DURATION (default 30s) · USERS (default 300) · PRODUCTS (default 20)
import http from 'k6/http';
import { Trend, Counter } from 'k6/metrics';
import { arrivals } from './arrivals.js';
import { as, mintTokens, users } from './auth.js';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:3000';
const DURATION = __ENV.DURATION || '30s';
const USERS = parseInt(__ENV.USERS || '300', 10);
const PRODUCTS = parseInt(__ENV.PRODUCTS || '20', 10);

const groups = ['rush', 'browse', 'checkout', 'balance'];
const times = Object.fromEntries(groups.map((g) => [g, new Trend(`${g}_ms`, true)]));
const answers = {};
for (const group of groups) {
  for (const kind of ['ok', 'refused', 'throttled', 'failed']) {
    answers[`${group}_${kind}`] = new Counter(`${group}_${kind}`);
  }
}

export const options = {
  scenarios: {
    rush: arrivals(parseInt(__ENV.RUSH_RATE || '150', 10), 'rush', DURATION),
    browse: arrivals(parseInt(__ENV.BROWSE_RATE || '120', 10), 'browse', DURATION),
    checkout: arrivals(parseInt(__ENV.CHECKOUT_RATE || '8', 10), 'checkout', DURATION),
    balance: arrivals(parseInt(__ENV.BALANCE_RATE || '15', 10), 'balance', DURATION),
  },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max', 'count'],
  setupTimeout: '120s',
};

export function setup() {
  return { tokens: mintTokens(BASE, users(1, USERS)) };
}

const pick = (n) => 1 + Math.floor(Math.random() * n);
// Refusals are the point of the drill: no answer counts as a k6 failure.
const quiet = { responseCallback: http.expectedStatuses({ min: 200, max: 599 }) };

/** Counts an answer: ok (2xx), refused (a function's 4xx), throttled (429), failed (5xx). */
function count(group, response) {
  times[group].add(response.timings.duration);
  const status = response.status;
  const kind = status >= 200 && status < 300 ? 'ok' : status === 429 ? 'throttled' : status >= 500 || status === 0 ? 'failed' : 'refused';
  answers[`${group}_${kind}`].add(1);
  return status;
}

export function rush(data) {
  const user = pick(USERS);
  count('rush', http.post(`${BASE}/api/v1/coupons/1`, null, { ...as(data.tokens, user), ...quiet, tags: { name: 'issue-coupon' } }));
}

export function browse() {
  const roll = Math.random();
  let response;
  if (roll < 0.4) response = http.get(`${BASE}/api/v1/products?limit=20`, { ...quiet, tags: { name: 'list-products' } });
  else if (roll < 0.8) response = http.get(`${BASE}/api/v1/products/${pick(PRODUCTS)}`, { ...quiet, tags: { name: 'get-product' } });
  else response = http.get(`${BASE}/api/v1/products/top`, { ...quiet, tags: { name: 'products-top' } });
  count('browse', response);
}

export function checkout(data) {
  const user = pick(USERS);
  const order = http.post(`${BASE}/api/v1/orders`, JSON.stringify({ products: [{ productId: pick(PRODUCTS), quantity: 1 }] }),
    { ...as(data.tokens, user), ...quiet, tags: { name: 'create-order' } });
  if (count('checkout', order) !== 201) return;
  const pay = http.post(`${BASE}/api/v1/payment`, JSON.stringify({ orderId: order.json('orderId') }),
    { ...as(data.tokens, user), ...quiet, tags: { name: 'pay-order' } });
  count('checkout', pay);
}

export function balance(data) {
  const user = pick(USERS);
  count('balance', http.get(`${BASE}/api/v1/users/${user}/balance`, { ...as(data.tokens, user), ...quiet, tags: { name: 'get-balance' } }));
}
