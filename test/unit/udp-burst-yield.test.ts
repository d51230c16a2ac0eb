// The agent's pause during long UDP bursts to local apps (shared/udp/burst-yield.ts):
// one pause per `everyBytes` of receive-buffer footprint (payload + per-datagram
// overhead) within a turn, none for steady traffic below that, at most
// `maxPauses` per turn, the count starting again every turn.
import { setImmediate as turn } from 'node:timers/promises';
import t from 'tap';
import { BURST_YIELD_DEFAULTS, BurstYield, DATAGRAM_OVERHEAD_BYTES, sleepMicros } from '../../shared/udp/burst-yield.js';

/** Payload length whose footprint is exactly 1,000 bytes, so `every` datagrams make `every` × 1,000. */
const LEN = 1000 - DATAGRAM_OVERHEAD_BYTES;

/** A BurstYield whose sleeps are recorded and whose turns end when the test says. */
function harness(every: number, maxPauses: number) {
  const sleeps: number[] = [];
  let endTurn: (() => void) | null = null;
  const y = new BurstYield({
    everyBytes: every * 1000,
    pauseUs: 50,
    maxPauses,
    sleep: (us) => sleeps.push(us),
    nextTurn: (fn) => {
      endTurn = fn;
    },
  });
  const send = (n: number, len = LEN) => {
    for (let i = 0; i < n; i++) y.sent1(len);
  };
  const nextTurn = () => {
    const fn = endTurn;
    endTurn = null;
    fn?.();
  };
  return { y, sleeps, send, nextTurn };
}

t.test('fewer datagrams than `every` per turn are never paused, however many turns', async (t) => {
  const h = harness(32, 16);
  for (let k = 0; k < 100; k++) {
    h.send(31);
    h.nextTurn();
  }
  t.equal(h.sleeps.length, 0);
});

t.test('one pause of pauseUs per `every` datagrams within a turn', async (t) => {
  const h = harness(32, 16);
  h.send(32);
  t.same(h.sleeps, [50], 'the 32nd datagram pauses');
  h.send(63);
  t.equal(h.sleeps.length, 2, '95 datagrams: two pauses (at 32 and 64)');
  h.send(1);
  t.equal(h.sleeps.length, 3, 'the 96th pauses again');
  t.equal(h.y.totalPauses, 3);
});

t.test('at most maxPauses per turn; the next turn starts over', async (t) => {
  const h = harness(10, 3);
  h.send(1000);
  t.equal(h.sleeps.length, 3, 'a 1,000-datagram turn stalls other streams at most 3 pauses');
  h.nextTurn();
  h.send(9);
  t.equal(h.sleeps.length, 3, 'the count restarted: 9 < 10');
  h.send(1);
  t.equal(h.sleeps.length, 4);
});

t.test('small datagrams count their per-datagram overhead, large ones their length', async (t) => {
  const h = harness(32, 16); // a pause per 32,000 bytes of footprint
  h.send(49, 0);
  t.equal(h.sleeps.length, 0, '49 empty datagrams = 49 × 640 B < 32,000');
  h.send(1, 0);
  t.equal(h.sleeps.length, 1, 'the 50th reaches 32,000');
  h.nextTurn();
  h.send(8, 3000);
  t.equal(h.sleeps.length, 1, '8 × 3,640 B < 32,000');
  h.send(1, 3000);
  t.equal(h.sleeps.length, 2, 'the 9th reaches it');
});

t.test('a partial count does not carry over into the next turn', async (t) => {
  const h = harness(32, 16);
  h.send(20);
  h.nextTurn();
  h.send(20);
  t.equal(h.sleeps.length, 0, '20 + 20 in two turns is not a burst of 40');
});

t.test('with the real event loop, a turn ends at setImmediate', async (t) => {
  const sleeps: number[] = [];
  const y = new BurstYield({ ...BURST_YIELD_DEFAULTS, sleep: (us) => sleeps.push(us) });
  const every = Math.ceil(BURST_YIELD_DEFAULTS.everyBytes / (1460 + DATAGRAM_OVERHEAD_BYTES));
  for (let i = 0; i < every + 3; i++) y.sent1(1460);
  t.equal(sleeps.length, 1);
  await turn();
  for (let i = 0; i < every - 1; i++) y.sent1(1460);
  t.equal(sleeps.length, 1, 'a new turn: the count started again');
});

t.test('sleepMicros blocks the thread for at least the time asked', async (t) => {
  const t0 = process.hrtime.bigint();
  sleepMicros(2_000);
  const us = Number(process.hrtime.bigint() - t0) / 1000;
  t.ok(us >= 1_900, `slept ${us.toFixed(0)} µs for 2,000 asked`);
});
