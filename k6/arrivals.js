// Open-model scenarios: requests arrive at a constant rate whatever the latency, so a
// slow server shows up as latency and dropped iterations, not as fewer requests.
/** A constant-arrival-rate scenario of `rate`/s running `exec` for `duration`. */
export function arrivals(rate, exec, duration) {
  return {
    executor: 'constant-arrival-rate', exec, rate, timeUnit: '1s', duration,
    preAllocatedVUs: Math.max(20, rate), maxVUs: Math.max(100, rate * 5),
  };
}
