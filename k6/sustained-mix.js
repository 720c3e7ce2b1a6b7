// A sustained open-model load: browsing and checkout arrive at constant rates for
// DURATION whatever the latency (constant-arrival-rate, so a slow server shows up as
// latency and dropped iterations, not as a politely lower request rate).
//   browse   BROWSE_RATE/s: list products (40%), one product (40%), top 5 (20%)
//   checkout CHECKOUT_RATE/s: create an order of one product, then pay it
// Run by tools/bench.py with fresh products of large stock (PRODUCTS).
//
//   BASE_URL · DURATION (default 60s) · BROWSE_RATE (default 200) · CHECKOUT_RATE
//   (default 30) · PRODUCTS (comma-separated ids to buy, default 1) · USERS (buyers
//   1..USERS, default 200) · CATALOGUE (products 1..CATALOGUE to browse, default 20)
//
// The buyers' tokens are setup data, which k6 hands every virtual user it starts,
// including those it adds mid-run; 200 keep that small enough not to load k6 itself
// (with 1,000 its own CPU showed as latency spikes on routes that take no token).
import http from 'k6/http';
import { check } from 'k6';
import { Trend, Counter } from 'k6/metrics';
import { arrivals } from './arrivals.js';
import { as, mintTokens, users } from './auth.js';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:3000';
const DURATION = __ENV.DURATION || '60s';
const PRODUCTS = (__ENV.PRODUCTS || '1').split(',').map(Number);
const USERS = parseInt(__ENV.USERS || '200', 10);
const CATALOGUE = parseInt(__ENV.CATALOGUE || '20', 10);

const browseTime = new Trend('browse', true);
const checkoutTime = new Trend('checkout', true);
const checkouts = new Counter('checkouts_paid');
const broken = new Counter('checkouts_broken');

export const options = {
  scenarios: {
    browse: arrivals(parseInt(__ENV.BROWSE_RATE || '200', 10), 'browse', DURATION),
    checkout: arrivals(parseInt(__ENV.CHECKOUT_RATE || '30', 10), 'checkout', DURATION),
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
  thresholds: { http_req_failed: ['rate==0'], checkouts_broken: ['count==0'] },
  setupTimeout: '120s',
};

export function setup() {
  return { tokens: mintTokens(BASE, users(1, USERS)) };
}

const pick = (n) => 1 + Math.floor(Math.random() * n);

export function browse() {
  const roll = Math.random();
  let response;
  if (roll < 0.4) response = http.get(`${BASE}/api/v1/products?limit=20`, { tags: { name: 'list-products' } });
  else if (roll < 0.8) response = http.get(`${BASE}/api/v1/products/${pick(CATALOGUE)}`, { tags: { name: 'get-product' } });
  else response = http.get(`${BASE}/api/v1/products/top`, { tags: { name: 'products-top' } });
  browseTime.add(response.timings.duration);
  check(response, { 'browse 200': (r) => r.status === 200 });
}

export function checkout(data) {
  const user = pick(USERS);
  const product = PRODUCTS[pick(PRODUCTS.length) - 1];
  const started = Date.now();
  const order = http.post(
    `${BASE}/api/v1/orders`,
    JSON.stringify({ userId: user, products: [{ productId: product, quantity: 1 }] }),
    as(data.tokens, user, { tags: { name: 'create-order' } }),
  );
  const paid = order.status === 201
    ? http.post(`${BASE}/api/v1/payment`, JSON.stringify({ userId: user, orderId: order.json('orderId') }),
      as(data.tokens, user, { tags: { name: 'pay-order' } }))
    : order;
  checkoutTime.add(Date.now() - started);
  if (check(paid, { 'checkout paid': (r) => r.status === 200 })) checkouts.add(1);
  else broken.add(1);
}
