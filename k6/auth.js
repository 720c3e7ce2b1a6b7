// Sign-in for the load scripts. With `make run`'s sign-in on, setup() mints a token
// per user from the local issuer (POST /_local/token) and every measured request
// carries its user's token, so the figures include verifying it. Under AUTH=off
// there is no issuer (404) and requests go without tokens, as the baseline's did.
import http from 'k6/http';
import { fail } from 'k6';

const JSON_TYPE = { 'Content-Type': 'application/json' };

/** Tokens of `users` (ids) by id, or null when sign-in is off. */
export function mintTokens(base, users) {
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
  if (tokens) headers.Authorization = `Bearer ${tokens[user]}`;
  return { ...extra, headers };
}
