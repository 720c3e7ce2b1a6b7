// Checkouts at a constant arrival rate, each from a user of its own, for the capacity
// benchmark (k6/capacity-bench.sh): an order of one unit of one product, then its
// payment, under the DynamoDB capacity model (CAPACITY=aws). The products are
// FIRST_PRODUCT..FIRST_PRODUCT+PRODUCTS-1, picked in turn: one product is a hot
// product's rush, twenty a shop's. Every answer should be a 201 and a 200; a 503 is a
// throttle that reached the client. Runs against a local API with AUTH=off.
//
//   BASE_URL · RATE (checkouts/s) · SECONDS · FIRST_USER · FIRST_PRODUCT · PRODUCTS
import http from 'k6/http';
import { Trend } from 'k6/metrics';
import { arrivals } from './arrivals.js';
import { outcomes } from './capacity.js';
import exec from 'k6/execution';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:3000';
const RATE = parseInt(__ENV.RATE || '50', 10);
const SECONDS = parseInt(__ENV.SECONDS || '60', 10);
const FIRST = parseInt(__ENV.FIRST_USER || '1', 10);
const FIRST_PRODUCT = parseInt(__ENV.FIRST_PRODUCT || '1', 10);
const PRODUCTS = parseInt(__ENV.PRODUCTS || '1', 10);

const checkout = new Trend('checkout', true);

const count = outcomes('checkouts', 'paid');

export const options = {
  scenarios: { checkout: arrivals(RATE, 'default', `${SECONDS}s`) },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

const JSON_BODY = { 'Content-Type': 'application/json' };
const ORDER = { headers: JSON_BODY, responseCallback: http.expectedStatuses(201, 503), tags: { name: 'order' } };
const PAY = { headers: JSON_BODY, responseCallback: http.expectedStatuses(200, 503), tags: { name: 'pay' } };

export default function () {
  const n = exec.scenario.iterationInTest;
  const user = FIRST + n;
  const product = FIRST_PRODUCT + (n % PRODUCTS);
  const started = Date.now();
  const order = http.post(
    `${BASE}/api/v1/orders`,
    JSON.stringify({ userId: user, products: [{ productId: product, quantity: 1 }] }),
    ORDER,
  );
  const payment = order.status === 201
    ? http.post(`${BASE}/api/v1/payment`, JSON.stringify({ userId: user, orderId: order.json('orderId') }), PAY)
    : order;
  checkout.add(Date.now() - started);
  count(order.status === 201 && payment.status === 200, payment.status);
}
