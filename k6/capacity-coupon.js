// One coupon issued at a constant arrival rate, each request from a user of its own,
// for the capacity benchmark (k6/capacity-bench.sh): what a coupon's counters take
// under the DynamoDB capacity model (CAPACITY=aws), sharded or not. The coupon holds
// more than the run asks for, so every answer should be 201; a 503 is a throttle that
// reached the client. Runs against a local API with AUTH=off (the client names the
// user): what is measured is the table's partitions, not sign-in.
//
//   BASE_URL · COUPON_ID · RATE (issues/s) · SECONDS · FIRST_USER
import http from 'k6/http';
import { Trend } from 'k6/metrics';
import { arrivals } from './arrivals.js';
import { outcomes } from './capacity.js';
import exec from 'k6/execution';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:3000';
const COUPON = __ENV.COUPON_ID || '1';
const RATE = parseInt(__ENV.RATE || '100', 10);
const SECONDS = parseInt(__ENV.SECONDS || '60', 10);
const FIRST = parseInt(__ENV.FIRST_USER || '1', 10);

const issue = new Trend('issue', true);

const count = outcomes('coupons', 'issued');

export const options = {
  scenarios: { issue: arrivals(RATE, 'default', `${SECONDS}s`) },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

// One name for every URL: a user id in each would make a time series per request.
const ANSWERS = { responseCallback: http.expectedStatuses(201, 503), tags: { name: 'issue' } };

export default function () {
  const user = FIRST + exec.scenario.iterationInTest;
  const response = http.post(`${BASE}/api/v1/coupons/${COUPON}?userId=${user}`, null, ANSWERS);
  issue.add(response.timings.duration);
  count(response.status === 201, response.status);
}
