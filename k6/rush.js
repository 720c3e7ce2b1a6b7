// A rush's span: when its first unit started and when its last one ended, as the
// trends `rush_started` and `rush_ended` (epoch milliseconds), whose min and max
// tools/bench.py reads. A rush's rate is its units over that span; its slowest unit
// alone would leave out the time k6 takes to get every virtual user's request out,
// which on a busy machine can be most of the rush.
import { Trend } from 'k6/metrics';

const started = new Trend('rush_started');
const ended = new Trend('rush_ended');

// Runs one unit of a rush (a request, or a flow of several) inside its span.
export function spanned(unit) {
  started.add(Date.now());
  try {
    return unit();
  } finally {
    ended.add(Date.now());
  }
}
