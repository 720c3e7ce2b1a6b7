// First-come coupon rush. Each virtual user is a distinct customer asking once for
// coupon COUPON_ID, as the baseline's clients do (POST /api/v1/coupons/{id}?userId=N).
// Exactly `total` requests must get 201 and every other one 409 COUPON_SOLD_OUT; no
// other answer is acceptable. k6/run.sh audits the coupon from the database afterwards.
//
//   BASE_URL (default http://127.0.0.1:3000) · COUPON_ID (default 1)
//   USERS (distinct users, default 100) · FIRST_USER (default 1)
import http from 'k6/http';
import { check, fail } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { as, mintTokens, users } from './auth.js';
import { spanned } from './rush.js';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:3000';
const COUPON = __ENV.COUPON_ID || '1';
const USERS = parseInt(__ENV.USERS || '100', 10);
const FIRST = parseInt(__ENV.FIRST_USER || '1', 10);

// The issue requests alone: http_req_duration also holds setup's token mints.
const issue = new Trend('issue', true);
const issued = new Counter('coupons_issued');
const soldOut = new Counter('coupons_sold_out');
const other = new Counter('coupons_other_answers');

export const options = {
  scenarios: {
    rush: { executor: 'per-vu-iterations', vus: USERS, iterations: 1, maxDuration: '2m' },
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
  thresholds: { coupons_other_answers: ['count==0'] },
};

export function setup() {
  const coupon = http.get(`${BASE}/api/v1/coupons/${COUPON}`);
  if (coupon.status !== 200) fail(`coupon ${COUPON}: ${coupon.status} ${coupon.body}`);
  return { before: coupon.json(), tokens: mintTokens(BASE, users(FIRST, USERS)) };
}

// 409 sold out is the right answer for most of a rush, not a failure (only for the
// issue request: setup's and teardown's reads must still be 200).
const ISSUE = { responseCallback: http.expectedStatuses(201, 409) };

export default function (data) {
  spanned(() => unit(data));
}

// One user's part of the rush.
function unit(data) {
  const user = FIRST + __VU - 1;
  const response = http.post(`${BASE}/api/v1/coupons/${COUPON}?userId=${user}`, null, as(data.tokens, user, ISSUE));
  issue.add(response.timings.duration);
  if (response.status === 201) issued.add(1);
  else if (response.status === 409 && response.json('code') === 'COUPON_SOLD_OUT') soldOut.add(1);
  else other.add(1);
  check(response, { '201 or 409 COUPON_SOLD_OUT': (r) => r.status === 201 || r.status === 409 });
}

export function teardown(data) {
  const after = http.get(`${BASE}/api/v1/coupons/${COUPON}`).json();
  const wanted = Math.min(data.before.remaining, USERS);
  if (after.issued - data.before.issued !== wanted) {
    fail(`issued ${after.issued - data.before.issued}, expected ${wanted}`);
  }
  console.log(`coupon ${COUPON}: issued ${data.before.issued} -> ${after.issued} of ${after.total}`);
}
