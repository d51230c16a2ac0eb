// Length-prefixed framing: round trips, arbitrary splits, limits, readFrame leaving the rest on the stream.
import t from 'tap';
import fc from 'fast-check';
import { PassThrough } from 'node:stream';
import { FrameDecoder, encodeFrame } from '../../shared/framing/length-prefixed.js';
import { readFrame } from '../../shared/framing/read-frame.js';
import { PorticoError } from '../../shared/errors.js';

t.test('messages survive any split of the byte stream', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }), fc.array(fc.nat(400), { maxLength: 30 }), (msgs, cuts) => {
      const wire = Buffer.concat(msgs.map((m) => encodeFrame(m)));
      const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
      const dec = new FrameDecoder();
      const out: Buffer[] = [];
      let prev = 0;
      for (const p of [...points, wire.length]) {
        out.push(...dec.feed(wire.subarray(prev, p)));
        prev = p;
      }
      return out.length === msgs.length && out.every((b, i) => Buffer.compare(b, Buffer.from(msgs[i]!)) === 0) && dec.pending === 0;
    }),
    { numRuns: 300 },
  );
  t.pass('300 random message sets, random split points');
});

t.test('a length above the limit is a PROTOCOL_ERROR', async (t) => {
  const dec = new FrameDecoder(16);
  const bad = Buffer.alloc(4);
  bad.writeUInt32BE(17, 0);
  t.throws(() => dec.feed(bad), { code: 'PROTOCOL_ERROR' });
  t.ok(new PorticoError('PROTOCOL_ERROR', 'x') instanceof Error);
});

t.test('feed(chunk, 1) stops after one message and drain() returns the rest', async (t) => {
  const dec = new FrameDecoder();
  const wire = Buffer.concat([encodeFrame(Buffer.from('head')), Buffer.from('raw bytes after')]);
  const msgs = dec.feed(wire, 1);
  t.equal(msgs.length, 1);
  t.equal(msgs[0]!.toString(), 'head');
  t.equal(dec.drain().toString(), 'raw bytes after');
});

t.test('readFrame reads one header and leaves the raw bytes on the stream', async (t) => {
  const s = new PassThrough();
  s.write(encodeFrame(Buffer.from('header')).subarray(0, 3));
  setTimeout(() => s.end(Buffer.concat([encodeFrame(Buffer.from('header')).subarray(3), Buffer.from('payload')])), 10);
  const head = await readFrame(s, 1000);
  t.equal(head.toString(), 'header');
  const rest: Buffer[] = [];
  for await (const c of s) rest.push(c as Buffer);
  t.equal(Buffer.concat(rest).toString(), 'payload', 'the bytes after the header are still there, in order');
});

t.test('readFrame fails on timeout and on an early end', async (t) => {
  const idle = new PassThrough();
  // readFrame's timer is unref'd (a socket keeps real processes alive); hold the loop open here.
  const hold = setTimeout(() => undefined, 1000);
  await t.rejects(readFrame(idle, 50), { code: 'TIMEOUT' });
  clearTimeout(hold);
  const ended = new PassThrough();
  ended.end(Buffer.from([0, 0]));
  await t.rejects(readFrame(ended, 1000), { code: 'PROTOCOL_ERROR' });
});
