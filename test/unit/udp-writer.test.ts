// The sending half of a UDP flow's stream (shared/udp/datagram-writer.ts),
// against an in-memory Writable: one write per event-loop turn, a write
// budget instead of the 16 KiB high-water mark, drop-oldest while blocked.
import { Writable } from 'node:stream';
import { setImmediate as turn } from 'node:timers/promises';
import t from 'tap';
import { DatagramDecoder } from '../../shared/framing/datagram.js';
import { DatagramWriter, STREAM_BUDGET_BYTES } from '../../shared/udp/datagram-writer.js';

/** A Writable that records each write and completes it now (`auto`) or when told. */
function sink(auto: boolean) {
  const writes: Buffer[] = [];
  const pending: (() => void)[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      writes.push(chunk);
      if (auto) cb();
      else pending.push(() => cb());
    },
  });
  const datagrams = () => {
    const out: number[] = [];
    const d = new DatagramDecoder((x) => out.push(x.readUInt32BE(0)));
    for (const w of writes) d.push(w);
    return out;
  };
  const release = () => pending.splice(0).forEach((f) => f());
  /** Completes writes turn after turn until the stream and the writer are idle. */
  const settle = async () => {
    for (let k = 0; k < 100 && (pending.length > 0 || stream.writableLength > 0); k++) {
      release();
      await turn();
    }
    await turn();
  };
  return { stream, writes, datagrams, release, settle };
}

const dgram = (i: number, size = 1460) => {
  const b = Buffer.alloc(size);
  b.writeUInt32BE(i, 0);
  return b;
};

t.test('the datagrams of one turn leave as ONE write, in order', async (t) => {
  const s = sink(true);
  const w = new DatagramWriter({ datagrams: 256, bytes: 1 << 20 });
  w.attach(s.stream);
  for (let i = 0; i < 40; i++) w.push(dgram(i));
  t.equal(s.writes.length, 0, 'nothing is written synchronously');
  await turn();
  t.equal(s.writes.length, 1, 'one write for 40 datagrams');
  t.equal(w.writes, 1);
  t.same(s.datagrams(), [...Array(40).keys()]);
  for (let i = 40; i < 45; i++) w.push(dgram(i));
  await turn();
  t.equal(s.writes.length, 2, 'the next turn is the next write');
  t.same(s.datagrams().slice(40), [40, 41, 42, 43, 44]);
});

t.test('a write over the 16 KiB high-water mark does not stall the next turn', async (t) => {
  // write() answers false for every 47 KB batch; the writer must not wait for 'drain' while the stream holds less than its budget.
  const s = sink(false);
  const w = new DatagramWriter({ datagrams: 256, bytes: 1 << 20 });
  w.attach(s.stream);
  for (let i = 0; i < 32; i++) w.push(dgram(i));
  await turn();
  t.equal(s.writes.length, 1);
  t.ok(s.stream.writableNeedDrain, 'the stream asked for drain');
  t.ok(s.stream.writableLength < STREAM_BUDGET_BYTES, 'but holds less than the budget');
  for (let i = 32; i < 40; i++) w.push(dgram(i));
  await turn();
  // The first write is still in flight (its callback is held), so the stream buffers the second one: Writable semantics.
  t.equal(s.writes.length, 1);
  t.equal(s.stream.writableLength, 40 * 1462, 'the second batch was handed to the stream without a drain in between');
  await s.settle();
  t.same(s.datagrams(), [...Array(40).keys()]);
});

t.test('over the budget it waits for drain, the queue drops the oldest, then it resumes', async (t) => {
  const s = sink(false);
  const drops: number[] = [];
  const w = new DatagramWriter({ datagrams: 16, bytes: 1 << 20 }, (n) => drops.push(n));
  w.attach(s.stream);
  // Fill the stream past its budget: one write per turn of 16 datagrams (23 KB), none completing.
  let i = 0;
  while (s.stream.writableLength < STREAM_BUDGET_BYTES) {
    for (let k = 0; k < 16; k++) w.push(dgram(i++));
    await turn();
  }
  t.equal(w.dropped, 0, 'nothing dropped while under the budget');
  const writesWhenFull = s.writes.length;
  const firstHeld = i;
  for (let k = 0; k < 100; k++) w.push(dgram(i++));
  await turn();
  t.equal(s.writes.length, writesWhenFull, 'no write while over the budget');
  t.equal(w.queue.length, 16, 'the queue holds its bound');
  t.equal(w.dropped, 100 - 16, 'and dropped the rest, oldest first');
  t.ok(drops.length > 0, 'onDrop was told');
  await s.settle();
  const got = s.datagrams();
  t.same(got.slice(-16), [...Array(16).keys()].map((k) => firstHeld + 100 - 16 + k), 'the newest 16 went out after drain');
  t.equal(got.length, firstHeld + 16);
});

t.test('close() drops what is queued and writes nothing more', async (t) => {
  const s = sink(true);
  const w = new DatagramWriter({ datagrams: 256, bytes: 1 << 20 });
  w.attach(s.stream);
  w.push(dgram(1));
  w.close();
  w.push(dgram(2));
  await turn();
  t.equal(s.writes.length, 0);
});
