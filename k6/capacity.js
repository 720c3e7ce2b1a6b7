// What the capacity benchmark's scripts share (k6/capacity-bench.sh reads their
// metrics): each counts its answers as the one it wants, a 503 (a throttle that reached
// the client) or anything else.
import { Counter } from 'k6/metrics';

/**
 * The counters `<kind>_<done>`, `<kind>_unavailable` and `<kind>_other_answers`, and a
 * function that counts one answer: `count(ok, status)`. Call it in the init context.
 */
export function outcomes(kind, done) {
  const wanted = new Counter(`${kind}_${done}`);
  const unavailable = new Counter(`${kind}_unavailable`);
  const other = new Counter(`${kind}_other_answers`);
  return (ok, status) => (ok ? wanted : status === 503 ? unavailable : other).add(1);
}
