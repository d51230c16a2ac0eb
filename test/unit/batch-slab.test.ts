// UDP batch buffers (shared/udp/batch-slab.ts): cut from reused slabs with
// free headroom offered to the mux. A slab must never be cut again while one
// of its batches is still out (its bytes would change under the socket), and
// it must be reused once all of them came back.
import fc from 'fast-check';
import { randomBytes, createHash } from 'node:crypto';
import { once } from 'node:events';
import { Writable, type Duplex } from 'node:stream';
import { setImmediate as turn, setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { DatagramDecoder } from '../../shared/framing/datagram.js';
import { FrameType } from '../../shared/mux/constants.js';
import { allocBatch, BATCH_SLAB_BYTES, batchSlabStats } from '../../shared/udp/batch-slab.js';
import { DatagramWriter } from '../../shared/udp/datagram-writer.js';
import { claimHeadroom, HEADROOM } from '../../shared/util/headroom.js';
import { sessionPair } from '../helpers/session-pair.js';

t.test('batches are offered with headroom, once, and never overlap an outstanding batch', async (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ size: fc.integer({ min: 0, max: 40_000 }), giveBack: fc.boolean(), later: fc.nat(5) }), { minLength: 1, maxLength: 200 }),
      (steps) => {
        // Each batch is filled with its own pattern; it must still hold it when it is given back.
        const out: { b: Buffer; fill: number; release: (b: Buffer) => void; due: number }[] = [];
        let i = 0;
        const check = (o: (typeof out)[number]) => {
          for (let k = 0; k < o.b.length; k++) if (o.b[k] !== o.fill) return false;
          return true;
        };
        for (const s of steps) {
          i++;
          const b = allocBatch(s.size);
          if (b.length !== s.size) return false;
          const release = claimHeadroom(b);
          if (release === undefined || claimHeadroom(b) !== undefined) return false; // offered exactly once
          b.fill(i & 0xff);
          // The headroom is writable and outside every other batch.
          Buffer.from(b.buffer, b.byteOffset - HEADROOM, HEADROOM).fill(0xee);
          for (const o of out) if (!check(o)) return false;
          if (s.giveBack) out.push({ b, fill: i & 0xff, release, due: i + s.later });
          // Batches not given back stand for ones a stream split or dropped: their slab is never reused.
          for (let k = out.length - 1; k >= 0; k--) {
            const o = out[k]!;
            if (o.due > i) continue;
            if (!check(o)) return false;
            o.release(o.b);
            out.splice(k, 1);
          }
        }
        for (const o of out) if (!check(o)) return false;
        for (const o of out) o.release(o.b);
        return true;
      },
    ),
    { numRuns: 300 },
  );
  t.pass('300 random sequences: no outstanding batch was overwritten');
});

t.test('a slab whose batches all came back is reused; one with a batch out is not', async (t) => {
  const size = 30_000; // four per slab
  const first = allocBatch(size);
  // Move to a fresh slab so the test starts at a slab boundary.
  let b = first;
  while (b.buffer === first.buffer) b = allocBatch(size);
  const slabA = b.buffer;
  const batches = [b];
  while ((b = allocBatch(size)).buffer === slabA) batches.push(b);
  // b is the first batch of slab B; slab A is no longer current.
  const reused0 = batchSlabStats.reused;
  for (const x of batches) claimHeadroom(x)!(x);
  // Fill slab B; the next slab should be A again.
  let c = b;
  while ((c = allocBatch(size)).buffer === b.buffer);
  t.equal(c.buffer, slabA, 'the slab whose batches all came back is cut again');
  t.equal(batchSlabStats.reused, reused0 + 1);
  // Slab B has batches out (never given back): after C fills, the next slab is new, not B.
  let d = c;
  while ((d = allocBatch(size)).buffer === c.buffer);
  t.not(d.buffer, b.buffer, 'a slab with a batch still out is not reused');
  t.ok(BATCH_SLAB_BYTES > size);
});

t.test('a batch bigger than a slab gets a buffer of its own, with headroom', async (t) => {
  const big = allocBatch(BATCH_SLAB_BYTES + 1);
  t.equal(big.length, BATCH_SLAB_BYTES + 1);
  t.equal(big.byteOffset, HEADROOM);
  const release = claimHeadroom(big);
  t.type(release, 'function');
  release!(big);
});

t.test('UDP batches through a mux session: framed in their headroom (one socket write each), slabs reused, bytes exact', async (t) => {
  const { client, server, cs } = await sessionPair(t);
  // Data frames handed to the socket, and how many of them are header + batch in one slab buffer.
  let dataWrites = 0;
  let inSlab = 0;
  const origWrite = cs.write.bind(cs) as (b: Buffer, cb?: () => void) => boolean;
  (cs as unknown as { write: (b: Buffer, cb?: () => void) => boolean }).write = (b: Buffer, cb?: () => void) => {
    if (b.length > 12 && b[0] === 0 && b[1] === FrameType.Data) {
      dataWrites++;
      if (b.buffer.byteLength === BATCH_SLAB_BYTES) inSlab++;
    }
    return origWrite(b, cb);
  };
  const st = client.open();
  const accepted = (await once(server, 'stream')) as [Duplex];
  const got: Buffer[] = [];
  let expected = Number.POSITIVE_INFINITY;
  let allArrived!: () => void;
  const arrived = new Promise<void>((r) => (allArrived = r));
  const decoder = new DatagramDecoder((d) => {
    got.push(Buffer.from(d));
    if (got.length === expected) allArrived();
  });
  accepted[0].on('data', (c: Buffer) => decoder.push(c));
  const writer = new DatagramWriter({ datagrams: 4096, bytes: 8 << 20 });
  writer.attach(st);
  const sent: Buffer[] = [];
  const reused0 = batchSlabStats.reused;
  // 400 turns of 1–12 datagrams of 1–1460 bytes (12 MiB would be too slow; ~2.6 MiB here).
  for (let k = 0; k < 400; k++) {
    const n = 1 + (k % 12);
    for (let j = 0; j < n; j++) {
      const d = randomBytes(1 + ((k * 31 + j * 97) % 1460));
      sent.push(d);
      writer.push(d);
    }
    await turn();
  }
  expected = sent.length;
  if (got.length === expected) allArrived();
  // Bounded: a lost datagram fails the count below instead of hanging the suite.
  const deadline = new AbortController();
  await Promise.race([arrived, sleep(5_000, undefined, { signal: deadline.signal }).catch(() => undefined)]);
  deadline.abort(); // no timer left behind
  t.equal(got.length, sent.length, `all ${sent.length} datagrams arrived`);
  const sha = (xs: Buffer[]) => {
    const h = createHash('sha256');
    for (const x of xs) h.update(x);
    return h.digest('hex');
  };
  t.equal(sha(got), sha(sent), 'sha256 of the datagrams, in order');
  t.ok(got.every((g, i) => g.length === sent[i]!.length), 'every length');
  t.ok(batchSlabStats.reused > reused0, `slabs were reused (${batchSlabStats.reused - reused0} times)`);
  t.ok(dataWrites >= 400, `one data frame per turn at least (${dataWrites})`);
  t.equal(inSlab, dataWrites, 'every data frame went out as one buffer: its header in the batch\'s headroom');
  writer.close();
  st.destroy();
});

t.test('a writer takes slab batches only when the stream would send them at once', async (t) => {
  const make = (sendable: boolean) => {
    const writes: Buffer[] = [];
    const sink = Object.assign(
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          writes.push(chunk);
          cb();
        },
      }),
      { sendableNow: () => sendable },
    );
    const w = new DatagramWriter({ datagrams: 64, bytes: 1 << 20 });
    w.attach(sink);
    return { w, writes };
  };
  for (const sendable of [true, false]) {
    const { w, writes } = make(sendable);
    for (let k = 0; k < 5; k++) {
      w.push(randomBytes(500));
      await turn();
    }
    t.equal(writes.length, 5);
    const fromSlab = writes.filter((b) => b.buffer.byteLength === BATCH_SLAB_BYTES).length;
    const claimable = writes.filter((b) => claimHeadroom(b) !== undefined).length;
    t.equal(fromSlab, sendable ? 5 : 0, `sendable ${sendable}: ${fromSlab} of 5 batches from a slab`);
    t.equal(claimable, sendable ? 5 : 0, `sendable ${sendable}: ${claimable} of 5 offered with headroom`);
    w.close();
  }
});

t.test('MuxStream.sendableNow: false once the peer stops granting window, or the stream ended', async (t) => {
  const { client, server } = await sessionPair(t);
  const st = client.open();
  t.ok(st.sendableNow(1000), 'a new stream can send 1000 bytes at once');
  st.write(Buffer.alloc(10));
  const accepted = (await once(server, 'stream')) as [Duplex];
  accepted[0].pause(); // never reads: no window comes back
  const window = st._sendWindow;
  t.notOk(st.sendableNow(window + 1), 'not more than the window');
  st.write(Buffer.alloc(window));
  t.equal(st._sendWindow, 0, 'window used up');
  t.notOk(st.sendableNow(1), 'no window left: not sendable');
  st.destroy();
  t.notOk(st.sendableNow(1), 'destroyed: not sendable');
});
