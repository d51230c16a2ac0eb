import t from 'tap';
import fc from 'fast-check';
import {
  decodeHeader,
  encodeFrameHeader,
  encodeHeader,
  Flag,
  FrameDecoder,
  FrameType,
  HEADER_LENGTH,
  type FrameHeader,
} from '../../shared/mux/index.js';

interface Frame {
  type: FrameType;
  flags: number;
  streamId: number;
  length: number;
  payload?: Buffer;
}

/** What a decoder run produced, in a shape independent of how the input was split. */
interface Decoded {
  headers: Array<Omit<FrameHeader, 'version'>>;
  payloads: Buffer[];
  ends: number;
}

function serialize(frames: Frame[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of frames) {
    parts.push(encodeFrameHeader(f));
    if (f.payload) parts.push(f.payload);
  }
  return Buffer.concat(parts);
}

function decode(inputs: Buffer[]): Decoded & { sharedMemory: boolean } {
  const out: Decoded = { headers: [], payloads: [], ends: 0 };
  let pieces: Buffer[] = [];
  let sharedMemory = true;
  const dec = new FrameDecoder({
    onFrame: (h) => {
      out.headers.push({ type: h.type, flags: h.flags, streamId: h.streamId, length: h.length });
      pieces = [];
    },
    onData: (_h, chunk) => {
      if (chunk.length === 0) throw new Error('empty payload piece');
      // Payloads are slices of the input, never copies.
      if (!inputs.some((inp) => inp.buffer === chunk.buffer && chunk.byteOffset >= inp.byteOffset && chunk.byteOffset + chunk.length <= inp.byteOffset + inp.length)) {
        sharedMemory = false;
      }
      pieces.push(chunk);
    },
    onDataEnd: () => {
      out.payloads.push(Buffer.concat(pieces));
      out.ends++;
    },
  });
  for (const inp of inputs) dec.write(inp);
  if (dec.pending !== 0) throw new Error('input did not end on a frame boundary');
  return { ...out, sharedMemory };
}

function splitAt(buf: Buffer, points: number[]): Buffer[] {
  const cuts = [...new Set(points.map((p) => p % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of cuts) {
    out.push(buf.subarray(prev, c));
    prev = c;
  }
  out.push(buf.subarray(prev));
  return out;
}

t.test('header encode/decode round-trip, including extremes', async (t) => {
  const cases: Array<Omit<FrameHeader, 'version'>> = [
    { type: FrameType.Data, flags: 0, streamId: 1, length: 0 },
    { type: FrameType.WindowUpdate, flags: Flag.SYN | Flag.ACK | Flag.FIN | Flag.RST, streamId: 0xffffffff, length: 0xffffffff },
    { type: FrameType.Ping, flags: Flag.ACK, streamId: 0, length: 0x80000000 },
    { type: FrameType.GoAway, flags: 0, streamId: 0, length: 2 },
    { type: FrameType.Data, flags: 0xffff, streamId: 0x7fffffff, length: 65536 },
  ];
  for (const c of cases) {
    const buf = encodeFrameHeader(c);
    t.equal(buf.length, HEADER_LENGTH);
    t.same(decodeHeader(buf, 0), { version: 0, ...c });
  }
  // Known bytes: big endian, version 0.
  t.same([...encodeFrameHeader({ type: FrameType.WindowUpdate, flags: Flag.SYN, streamId: 3, length: 0x010203 })], [0, 1, 0, 1, 0, 0, 0, 3, 0, 1, 2, 3]);
  // encodeHeader writes at an offset into a caller's buffer and returns the end.
  const big = Buffer.alloc(30, 0xee);
  t.equal(encodeHeader(big, 5, FrameType.Ping, Flag.SYN, 0, 7), 17);
  t.equal(big[4], 0xee);
  t.equal(big[17], 0xee);
  t.same(decodeHeader(big, 5), { version: 0, type: FrameType.Ping, flags: Flag.SYN, streamId: 0, length: 7 });
});

t.test('bad version and unknown type are PROTOCOL_ERROR, and stop the decoder', async (t) => {
  const bad = Buffer.from([1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
  t.throws(() => decodeHeader(bad, 0), { name: 'PorticoError', code: 'PROTOCOL_ERROR' });
  const unk = Buffer.from([0, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
  t.throws(() => decodeHeader(unk, 0), { name: 'PorticoError', code: 'PROTOCOL_ERROR' });
  let frames = 0;
  const dec = new FrameDecoder({ onFrame: () => frames++, onData: () => {}, onDataEnd: () => {} });
  const good = encodeFrameHeader({ type: FrameType.Ping, flags: Flag.SYN, streamId: 0, length: 1 });
  // The bad header arrives split; the good frame before it is still delivered.
  dec.write(Buffer.concat([good, unk.subarray(0, 5)]));
  t.throws(() => dec.write(unk.subarray(5)), { name: 'PorticoError', code: 'PROTOCOL_ERROR' });
  t.ok(dec.isStopped);
  dec.write(good);
  t.equal(frames, 1, 'nothing is parsed after an error');
});

t.test('payload pieces are delivered as they arrive, before the frame is complete', async (t) => {
  const payload = Buffer.alloc(100_000, 7);
  const wire = serialize([{ type: FrameType.Data, flags: Flag.SYN, streamId: 1, length: payload.length, payload }]);
  const seen: number[] = [];
  let ended = false;
  const dec = new FrameDecoder({ onFrame: () => {}, onData: (_h, c) => seen.push(c.length), onDataEnd: () => (ended = true) });
  dec.write(wire.subarray(0, 5));
  dec.write(wire.subarray(5, 1000));
  t.same(seen, [988]);
  t.notOk(ended);
  dec.write(wire.subarray(1000));
  t.same(seen, [988, wire.length - 1000]);
  t.ok(ended);
});

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc
    .record({
      flags: fc.integer({ min: 0, max: 15 }),
      streamId: fc.integer({ min: 1, max: 0xffffffff }),
      payload: fc.uint8Array({ minLength: 0, maxLength: 3000 }),
    })
    .map(({ flags, streamId, payload }) => ({ type: FrameType.Data, flags, streamId, length: payload.length, payload: Buffer.from(payload) })),
  fc
    .record({
      type: fc.constantFrom(FrameType.WindowUpdate, FrameType.Ping, FrameType.GoAway),
      flags: fc.integer({ min: 0, max: 0xffff }),
      streamId: fc.integer({ min: 0, max: 0xffffffff }),
      length: fc.integer({ min: 0, max: 0xffffffff }),
    })
    .map((f) => f as Frame),
);

t.test('property: any split of any frame sequence decodes identically, payloads sliced not copied', async (t) => {
  fc.assert(
    fc.property(fc.array(frameArb, { minLength: 1, maxLength: 30 }), fc.array(fc.nat(), { maxLength: 40 }), (frames, points) => {
      const wire = serialize(frames);
      const whole = decode([wire]);
      const split = decode(splitAt(wire, points));
      const expected: Decoded = {
        headers: frames.map(({ type, flags, streamId, length }) => ({ type, flags, streamId, length })),
        payloads: frames.filter((f) => f.type === FrameType.Data).map((f) => f.payload!),
        ends: frames.filter((f) => f.type === FrameType.Data).length,
      };
      const strip = (d: Decoded): Decoded => ({ headers: d.headers, payloads: d.payloads, ends: d.ends });
      return (
        JSON.stringify(strip(whole)) === JSON.stringify(expected) &&
        JSON.stringify(strip(split)) === JSON.stringify(expected) &&
        whole.sharedMemory &&
        split.sharedMemory
      );
    }),
    { numRuns: 300 },
  );
  t.pass('300 random sequences, random split points');
});

t.test('property: byte-at-a-time feeding equals one-shot feeding', async (t) => {
  fc.assert(
    fc.property(fc.array(frameArb, { minLength: 1, maxLength: 8 }), (frames) => {
      const wire = serialize(frames);
      const bytes: Buffer[] = [];
      for (let i = 0; i < wire.length; i++) bytes.push(wire.subarray(i, i + 1));
      const a = decode([wire]);
      const b = decode(bytes);
      return JSON.stringify(a.headers) === JSON.stringify(b.headers) && Buffer.concat(a.payloads).equals(Buffer.concat(b.payloads));
    }),
    { numRuns: 50 },
  );
  t.pass();
});
