// Reconnect backoff: doubles from 0.5 s, jittered within [step/2, step], capped, reset after a success.
import t from 'tap';
import { Backoff } from '../../shared/util/backoff.js';

t.test('delays double, stay within [step/2, step], and are capped', async (t) => {
  const lo = new Backoff(500, 20_000, () => 0);
  const hi = new Backoff(500, 20_000, () => 1);
  const los = Array.from({ length: 10 }, () => lo.next());
  const his = Array.from({ length: 10 }, () => hi.next());
  t.same(his, [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000, 20000, 20000], 'upper bound doubles to the 20 s cap');
  t.same(los, his.map((h) => h / 2), 'lower bound is half of it (jitter)');
  const rnd = new Backoff(500, 20_000);
  for (let i = 0; i < 200; i++) {
    const d = rnd.next();
    t.ok(d >= 250 && d <= 20_000, `delay ${d} within bounds`, { diagnostic: false });
  }
});

t.test('reset starts over', async (t) => {
  const b = new Backoff(500, 20_000, () => 1);
  b.next();
  b.next();
  b.next();
  b.reset();
  t.equal(b.next(), 500);
});
