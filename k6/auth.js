// Sign-in for the load scripts. With `make run`'s sign-in on, setup() mints a token
// per user from the local issuer (POST /_local/token) and every measured request
// carries its user's token, so the figures include verifying it. Under AUTH=off
// there is no issuer (404) and requests go without tokens, as the baseline's did.
//
// A rush of many users takes its tokens from TOKENS_FILE instead (a JSON array, the
// token of user TOKENS_FIRST + i at i, minted before the run by tools/bench.py): one
// copy shared by every virtual user. setup()'s data is copied into each virtual user
// as it starts, so with 1000 users each parsing 1000 tokens, k6 itself spread a rush's
// first requests over seconds.
import http from 'k6/http';
import { fail } from 'k6';
import { SharedArray } from 'k6/data';

const JSON_TYPE = { 'Content-Type': 'application/json' };
const SHARED = __ENV.TOKENS_FILE ? new SharedArray('tokens', () => JSON.parse(open(__ENV.TOKENS_FILE))) : null;
const SHARED_FIRST = parseInt(__ENV.TOKENS_FIRST || '1', 10);

/** Tokens of `users` (ids) by id, or null when sign-in is off (or the tokens are shared). */
export function mintTokens(base, users) {
  if (SHARED) return null;
  const probe = http.post(`${base}/_local/token`, JSON.stringify({ userId: users[0] || 1 }), {
    headers: JSON_TYPE,
    responseCallback: http.expectedStatuses(200, 404),
  });
  if (probe.status === 404) return null;
  const tokens = {};
  for (let i = 0; i < users.length; i += 100) {
    const chunk = users.slice(i, i + 100);
    const answers = http.batch(chunk.map((user) => ['POST', `${base}/_local/token`, JSON.stringify({ userId: user }), { headers: JSON_TYPE }]));
    answers.forEach((answer, j) => {
      if (answer.status !== 200) fail(`token for user ${chunk[j]}: ${answer.status} ${answer.body}`);
      tokens[chunk[j]] = answer.json('token');
    });
  }
  return tokens;
}

/** Users first..first+count-1. */
export function users(first, count) {
  return Array.from({ length: count }, (_, i) => first + i);
}

/** Request parameters for `user`: JSON, with the user's token when sign-in is on. */
export function as(tokens, user, extra = {}) {
  const headers = { ...JSON_TYPE };
  if (SHARED) headers.Authorization = `Bearer ${SHARED[user - SHARED_FIRST]}`;
  else if (tokens) headers.Authorization = `Bearer ${tokens[user]}`;
  return { ...extra, headers };
}
