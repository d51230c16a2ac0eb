// UDP stream framing and the drop-oldest queue, byte by byte, no sockets.
import t from 'tap';
import fc from 'fast-check';
import { DatagramDecoder, encodeDatagram, encodeDatagrams, encodeSealRecord, MAX_DATAGRAM_BYTES } from '../../shared/framing/datagram.js';
import { DropOldestQueue } from '../../shared/udp/drop-oldest-queue.js';

function decodeAll(chunks: Buffer[]): { out: Buffer[]; pending: number } {
  const out: Buffer[] = [];
  const d = new DatagramDecoder((x) => out.push(Buffer.from(x)));
  for (const c of chunks) d.push(c);
  return { out, pending: d.pending };
}

t.test('wire form: 2-byte big-endian length, then the payload', async (t) => {
  t.same([...encodeDatagram(Buffer.from([0xaa]))], [0, 1, 0xaa]);
  t.same([...encodeDatagram(Buffer.alloc(0))], [0, 0], 'empty datagram is legal');
  const big = encodeDatagram(Buffer.alloc(MAX_DATAGRAM_BYTES, 1));
  t.equal(big.readUInt16BE(0), 65_535);
  t.equal(big.length, 65_537);
  t.throws(() => encodeDatagram(Buffer.alloc(65_536)), RangeError, 'over 65,535 bytes is refused');
  t.same([...encodeDatagrams([Buffer.from([1]), Buffer.from([2, 3])])], [0, 1, 1, 0, 2, 2, 3], 'a batch is the frames back to back');
});

t.test('1-byte and 1472-byte datagrams come out as such, split at every byte', async (t) => {
  const a = Buffer.from([9]);
  const b = Buffer.alloc(1472, 5);
  const wire = encodeDatagrams([a, Buffer.alloc(0), b]);
  for (let cut = 0; cut <= wire.length; cut++) {
    const { out, pending } = decodeAll([wire.subarray(0, cut), wire.subarray(cut)]);
    if (out.length !== 3 || !out[0]!.equals(a) || out[1]!.length !== 0 || !out[2]!.equals(b) || pending !== 0) {
      t.fail(`cut at ${cut}`);
      return;
    }
  }
  const bytewise = decodeAll([...wire].map((x) => Buffer.from([x])));
  t.same(bytewise.out.map((x) => x.length), [1, 0, 1472], 'one byte at a time');
});

t.test('whole datagrams inside one chunk are zero-copy views of it', async (t) => {
  const wire = encodeDatagrams([Buffer.from('ab'), Buffer.from('cde')]);
  const seen: Buffer[] = [];
  new DatagramDecoder((x) => seen.push(x)).push(wire);
  t.equal(seen[0]!.buffer, wire.buffer);
  t.equal(seen[1]!.toString(), 'cde');
});

t.test('a stream cut mid-datagram leaves it pending, not emitted', async (t) => {
  const wire = encodeDatagram(Buffer.alloc(100, 1));
  t.same(decodeAll([wire.subarray(0, 1)]), { out: [], pending: 1 });
  t.same(decodeAll([wire.subarray(0, 50)]).pending, 50);
});

t.test('property: any datagrams, any chunking, round-trip exactly', async (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ minLength: 0, maxLength: 2000 }), { maxLength: 40 }),
      fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 50 }),
      (datagrams, cuts) => {
        const wire = encodeDatagrams(datagrams);
        const chunks: Buffer[] = [];
        let off = 0;
        for (let i = 0; off < wire.length; i++) {
          const n = cuts[i % cuts.length]!;
          chunks.push(wire.subarray(off, off + n));
          off += n;
        }
        const { out, pending } = decodeAll(chunks);
        return pending === 0 && out.length === datagrams.length && out.every((x, i) => x.equals(Buffer.from(datagrams[i]!)));
      },
    ),
    { numRuns: 300 },
  );
  t.pass('300 random runs');
});

t.test('seal records: [0xffff][id:16] between datagrams, split at every byte, go to onSeal; without it they read as a datagram', async (t) => {
  const id = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  t.same([...encodeSealRecord(id)], [0xff, 0xff, ...id], 'wire form');
  t.throws(() => encodeSealRecord(Buffer.alloc(15)), RangeError, 'an id is 16 bytes');
  const a = Buffer.from('before');
  const b = Buffer.alloc(1472, 7);
  const wire = Buffer.concat([encodeDatagram(a), encodeSealRecord(id), encodeDatagram(b)]);
  let bad = 0;
  for (let cut = 0; cut <= wire.length; cut++) {
    for (const cut2 of [cut, Math.min(wire.length, cut + 1), Math.min(wire.length, cut + 9)]) {
      const out: Buffer[] = [];
      const seals: Buffer[] = [];
      const d = new DatagramDecoder((x) => out.push(Buffer.from(x)), (x) => seals.push(Buffer.from(x)));
      d.push(wire.subarray(0, cut));
      d.push(wire.subarray(cut, cut2));
      d.push(wire.subarray(cut2));
      if (out.length !== 2 || !out[0]!.equals(a) || !out[1]!.equals(b) || seals.length !== 1 || !seals[0]!.equals(id) || d.pending !== 0) bad++;
    }
  }
  t.equal(bad, 0, 'every split decodes to the two datagrams and one seal record');
  // A decoder without onSeal (an agent that never said sealed_udp) sees a 65,535-byte datagram under way, as before.
  const { out, pending } = decodeAll([wire]);
  t.equal(out.length, 1, 'only the datagram before it');
  t.equal(pending, 2 + wire.length - encodeDatagram(a).length - 2, 'the rest is a datagram still arriving');
});

t.test('drop-oldest queue: bounded by count and bytes, keeps the newest, counts drops', async (t) => {
  const q = new DropOldestQueue(3, 1000);
  for (let i = 0; i < 5; i++) q.push(Buffer.from([i]));
  t.equal(q.length, 3);
  t.equal(q.dropped, 2);
  t.same(q.take().map((b) => b[0]), [2, 3, 4], 'the two oldest went');
  const qb = new DropOldestQueue(100, 1000);
  qb.push(Buffer.alloc(600, 1));
  t.equal(qb.push(Buffer.alloc(600, 2)), 1, 'bytes bound drops the oldest');
  t.equal(qb.bytes, 600);
  t.equal(qb.shift()![0], 2);
  t.equal(qb.push(Buffer.alloc(1001)), 1, 'a datagram larger than the byte bound is itself dropped');
  t.equal(qb.length, 0);
  const qt = new DropOldestQueue(1000, 100_000);
  for (let i = 0; i < 50; i++) qt.push(Buffer.alloc(1000, i));
  const first = qt.take(10_000);
  t.equal(first.length, 10, 'take() stops at its byte budget');
  t.equal(first[0]![0], 0);
  t.equal(qt.length, 40);
  t.equal(qt.take(1)[0]!.length, 1000, 'take() returns at least one');
});

t.test('drop-oldest queue ring: FIFO order survives growth and wrap-around', async (t) => {
  const q = new DropOldestQueue(64, 1 << 20);
  let next = 0;
  let expect = 0;
  let ok = true;
  for (let round = 0; round < 200; round++) {
    for (let i = 0; i < (round % 7) + 1; i++) q.push(Buffer.from([next++ & 0xff]));
    for (let i = 0; i < (round % 5) + 1 && q.length > 0; i++) {
      const b = q.shift()!;
      if (q.dropped === 0 && b[0] !== (expect++ & 0xff)) ok = false;
    }
  }
  t.ok(ok, 'FIFO order');
  t.ok(q.length <= 64);
});
