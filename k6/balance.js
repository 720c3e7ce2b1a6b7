// The baseline's balance scenario: 100 virtual users fire charge/use pairs of 1000.00
// at one user at once. Every request must succeed; afterwards the balance must be what
// it was (the pairs cancel out) and the ledger must add up (checked from the database
// by `rushcart-admin audit`, which k6/run.sh runs after this script).
//
//   BASE_URL (default http://127.0.0.1:3000) · USER_ID (default 1)
//   VUS (default 100) · PAIRS (charge/use pairs per virtual user, default 10)
import http from 'k6/http';
import { check, fail } from 'k6';
import { as, mintTokens } from './auth.js';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:3000';
const USER = __ENV.USER_ID || '1';
const VUS = parseInt(__ENV.VUS || '100', 10);
const PAIRS = parseInt(__ENV.PAIRS || '10', 10);

export const options = {
  scenarios: {
    charge_use_pairs: { executor: 'per-vu-iterations', vus: VUS, iterations: PAIRS, maxDuration: '5m' },
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
  thresholds: { http_req_failed: ['rate==0'] },
};

function balance(tokens) {
  const response = http.get(`${BASE}/api/v1/users/${USER}/balance`, as(tokens, USER));
  if (response.status !== 200) fail(`balance: ${response.status} ${response.body}`);
  return response.json('balance');
}

export function setup() {
  const tokens = mintTokens(BASE, [USER]);
  return { tokens, before: balance(tokens) };
}

export default function (data) {
  const body = JSON.stringify({ amount: '1000.00' });
  const params = as(data.tokens, USER);
  const charged = http.post(`${BASE}/api/v1/users/${USER}/balance/charge`, body, params);
  check(charged, { 'charge 200': (r) => r.status === 200 });
  const used = http.post(`${BASE}/api/v1/users/${USER}/balance/use`, body, params);
  check(used, { 'use 200': (r) => r.status === 200 });
}

export function teardown(data) {
  const after = balance(data.tokens);
  if (after !== data.before) fail(`balance drifted: ${data.before} before, ${after} after`);
  console.log(`balance before ${data.before}, after ${after}: unchanged as expected`);
}
