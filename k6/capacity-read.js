// One product read at a constant arrival rate, for the capacity benchmark
// (k6/capacity-bench.sh): a strongly consistent read of a small item costs one read
// unit, and one partition takes 3,000·s of them a second under the capacity model.
// Every answer should be a 200; a 503 is a throttle that reached the client.
//
//   BASE_URL · PRODUCT_ID · RATE (reads/s) · SECONDS
import http from 'k6/http';
import { Trend } from 'k6/metrics';
import { arrivals } from './arrivals.js';
import { outcomes } from './capacity.js';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:3000';
const PRODUCT = __ENV.PRODUCT_ID || '1';
const RATE = parseInt(__ENV.RATE || '100', 10);
const SECONDS = parseInt(__ENV.SECONDS || '60', 10);

const read = new Trend('read', true);

const count = outcomes('reads', 'served');

export const options = {
  scenarios: { read: arrivals(RATE, 'default', `${SECONDS}s`) },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

const ANSWERS = { responseCallback: http.expectedStatuses(200, 503), tags: { name: 'product' } };

export default function () {
  const response = http.get(`${BASE}/api/v1/products/${PRODUCT}`, ANSWERS);
  read.add(response.timings.duration);
  count(response.status === 200, response.status);
}
