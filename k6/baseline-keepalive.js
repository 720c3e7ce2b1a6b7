// The baseline's own k6 client, as the Spring shop's load test drives it against
// `AUTH=off make run`: 100 virtual users, one iteration each, every request on the
// user's one keep-alive connection: take coupon 1 (`?userId=`), sleep 10 s, order one
// product with it, pay. A connection the server closes while the user sleeps shows up
// as a failed request (status 0), which this script counts; it cost the baseline's
// client 1-3% of its flows before the local API kept idle connections for 60 s.
//
//   BASE_URL · USERS (default 100) · FIRST_USER (default 1) · PRODUCT_ID (default 1)
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter } from 'k6/metrics';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:3000';
const USERS = parseInt(__ENV.USERS || '100', 10);
const FIRST = parseInt(__ENV.FIRST_USER || '1', 10);
const PRODUCT = parseInt(__ENV.PRODUCT_ID || '1', 10);

const lost = new Counter('connection_lost');
const paid = new Counter('flows_paid');

export const options = {
  scenarios: { baseline: { executor: 'per-vu-iterations', vus: USERS, iterations: 1, maxDuration: '2m' } },
  thresholds: { connection_lost: ['count==0'] },
};

const json = { headers: { 'Content-Type': 'application/json' } };

function sent(response) {
  if (response.status === 0) lost.add(1);
  return response;
}

export default function () {
  const user = FIRST + __VU - 1;
  const coupon = sent(http.post(`${BASE}/api/v1/coupons/1?userId=${user}`, null, json));
  check(coupon, { 'coupon answered': (r) => r.status === 201 || r.status === 409 });
  sleep(10);
  const products = [{ productId: PRODUCT, quantity: 1 }];
  const body = coupon.status === 201 ? { userId: user, products, couponId: 1 } : { userId: user, products };
  const order = sent(http.post(`${BASE}/api/v1/orders`, JSON.stringify(body), json));
  if (!check(order, { 'order created': (r) => r.status === 201 })) return;
  const pay = { userId: user, orderId: order.json('orderId') };
  const payment = sent(http.post(`${BASE}/api/v1/payment`, JSON.stringify(pay), json));
  if (check(payment, { 'paid': (r) => r.status === 200 })) paid.add(1);
}
