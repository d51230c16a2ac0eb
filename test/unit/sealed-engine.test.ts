// The sealed data path's native engine (native/sealed_pump.c through
// shared/sealed/engine.ts) on real loopback sockets: bytes exact both ways
// with half-close through two pairs joined by a data connection; what it
// writes opens with the JavaScript reference of the format; a cut data
// connection, a forged or reordered unit, an oversized length and an abort
// each reset the plain socket and release nothing unverified; preloaded
// bytes come first; firstByte peeks without reading; nothing stays live.
import t, { type Test } from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { sealedEngine, sealedProblem, type PairKeys, type SealedPair } from '../../shared/sealed/engine.js';
import { FIN, keyPairs, openUnits, sealUnit, unreadPair } from '../helpers/sealed-units.js';

const engine = sealedEngine();
if (!engine) {
  t.test('sealed engine', { skip: `unavailable: ${sealedProblem()}` }, async () => undefined);
} else {
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  /** Everything `s` sends until it ends (resolves) or errors (resolves with the error). */
  const drain = (s: net.Socket): Promise<{ data: Buffer; err?: NodeJS.ErrnoException }> =>
    new Promise((resolve) => {
      const parts: Buffer[] = [];
      s.on('data', (c: Buffer) => parts.push(c));
      s.once('end', () => resolve({ data: Buffer.concat(parts) }));
      s.once('error', (err) => resolve({ data: Buffer.concat(parts), err }));
      s.resume();
    });

  /** A pair whose plain side is `client` (the test's end) and whose data connection's far end the test plays. */
  async function pairWithPeer(t: Test, keys: PairKeys, preload: Buffer | null = null) {
    const [client, plain] = await unreadPair(t);
    const [peer, sealed] = await unreadPair(t);
    const pair = engine!.add(plain, sealed, keys, preload);
    const ended = pair.done.then((r) => {
      plain.destroy();
      sealed.destroy();
      return r;
    });
    return { client, peer, pair, ended };
  }

  t.test('two pairs over one data connection: 24 MiB up, 12 MiB down, half-close, byte for byte', async (t) => {
    const keys = keyPairs();
    const [client, front] = await unreadPair(t); // the public client and the relay's socket for it
    const [agentData, relayData] = await unreadPair(t); // the data connection
    const [back, app] = await unreadPair(t); // the agent's socket to the app, and the app
    const relay: SealedPair = engine.add(front, relayData, keys.a);
    const agent: SealedPair = engine.add(back, agentData, keys.b);
    const cleanup = (p: SealedPair, socks: net.Socket[]) => p.done.then((r) => (socks.forEach((s) => s.destroy()), r));
    const relayDone = cleanup(relay, [front, relayData]);
    const agentDone = cleanup(agent, [back, agentData]);
    const up = randomBytes(24 * 1024 * 1024);
    const down = randomBytes(12 * 1024 * 1024);
    const appGot = drain(app);
    const clientGot = drain(client);
    client.end(up);
    // The app answers only after the client's end arrived (half-close carried through).
    const a = await appGot;
    t.equal(a.data.length, up.length, 'app got every byte');
    t.equal(sha(a.data), sha(up), 'app: sha256 matches');
    app.end(down);
    const c = await clientGot;
    t.equal(c.err, undefined, 'client ended cleanly');
    t.equal(sha(c.data), sha(down), 'client: sha256 matches');
    const [r1, r2] = await Promise.all([relayDone, agentDone]);
    t.same(r1, { up: up.length, down: down.length, code: '' }, 'relay pair counted and ended cleanly');
    t.same(r2, { up: down.length, down: up.length, code: '' }, 'agent pair counted and ended cleanly');
    t.equal(engine.live, 0, 'no pair left');
  });

  t.test('what the engine writes opens with the reference format, FIN last', async (t) => {
    const keys = keyPairs();
    const { client, peer, pair, ended } = await pairWithPeer(t, keys.a);
    const raw: Buffer[] = [];
    peer.on('data', (c: Buffer) => raw.push(c));
    peer.resume();
    const payload = randomBytes(700 * 1024);
    client.end(payload);
    // The peer sends its own FIN unit so the pair can end.
    peer.write(sealUnit(keys.b.up, 0, Buffer.alloc(0), true));
    const r = await ended;
    await once(peer, 'end');
    const opened = openUnits(keys.b.down, Buffer.concat(raw));
    t.equal(sha(opened.payload), sha(payload), 'payload opens intact');
    t.ok(opened.fin, 'the last unit carries FIN');
    t.ok(opened.units >= 4, `${opened.units} units (at most 256 KiB each)`);
    t.same(r, { up: payload.length, down: 0, code: '' });
  });

  t.test('a data connection cut without a FIN unit resets the client (truncation)', async (t) => {
    const keys = keyPairs();
    const { client, peer, ended } = await pairWithPeer(t, keys.a);
    const got = drain(client);
    peer.write(sealUnit(keys.b.up, 0, Buffer.from('hello')));
    // The cut comes after the client has read the verified bytes. (Had both arrived before the
    // client's next wake-up, libuv would report the reset as an end: after a short read it takes
    // EPOLLHUP for EOF without reading again — its behaviour, not the engine's: the engine did reset.)
    await once(client, 'data');
    peer.end();
    const r = await ended;
    t.equal(r.code, 'TRUNCATED');
    const c = await got;
    t.equal(c.data.toString(), 'hello', 'verified bytes before the cut arrived');
    t.equal(c.err?.code, 'ECONNRESET', 'the client sees a reset, not a clean end');
  });

  t.test('a forged unit: nothing of it is released, the client is reset', async (t) => {
    const keys = keyPairs();
    const { client, peer, ended } = await pairWithPeer(t, keys.a);
    const got = drain(client);
    const bad = sealUnit(keys.b.up, 1, Buffer.from('second'));
    bad[6]! ^= 1;
    peer.write(sealUnit(keys.b.up, 0, Buffer.from('first')));
    // The forged unit follows once the client has read the good one (as in the truncation case:
    // bytes and reset queued together can read as a clean end in libuv; the engine did reset).
    await once(client, 'data');
    peer.write(bad);
    const r = await ended;
    t.equal(r.code, 'BAD_TAG');
    const c = await got;
    t.equal(c.data.toString(), 'first');
    t.equal(c.err?.code, 'ECONNRESET');
  });

  t.test('units replayed or out of order fail their tag (counter nonce)', async (t) => {
    const keys = keyPairs();
    const { client, peer, ended } = await pairWithPeer(t, keys.a);
    const got = drain(client);
    const u0 = sealUnit(keys.b.up, 0, Buffer.from('zero'));
    peer.write(Buffer.concat([u0, u0]));
    t.equal((await ended).code, 'BAD_TAG');
    t.equal((await got).data.toString(), 'zero');
  });

  t.test('a unit longer than the unit size, a FIN with payload, or an empty unit without FIN is a protocol error', async (t) => {
    // (Empty units would open without writing anything and so escape the per-turn budget: a peer
    // streaming them kept the engine thread to itself, found in review.)
    for (const word of [256 * 1024 + 1, FIN + 3, 0]) {
      const keys = keyPairs();
      const { client, peer, ended } = await pairWithPeer(t, keys.a);
      const got = drain(client);
      const w = Buffer.alloc(4);
      w.writeUInt32BE(word >>> 0);
      // The empty unit is sealed properly: it is refused for what it is, not for its tag.
      peer.write(word === 0 ? sealUnit(keys.b.up, 0, Buffer.alloc(0)) : w);
      t.equal((await ended).code, 'PROTOCOL_ERROR', `word 0x${word.toString(16)}`);
      t.equal((await got).err?.code, 'ECONNRESET');
    }
  });

  t.test('abort resets both sockets; a second abort and one after the end are no-ops', async (t) => {
    const keys = keyPairs();
    const { client, peer, pair, ended } = await pairWithPeer(t, keys.a);
    const got = drain(client);
    const peerGot = drain(peer);
    pair.abort();
    pair.abort();
    t.equal((await ended).code, 'ABORTED');
    pair.abort();
    t.equal((await got).err?.code, 'ECONNRESET');
    t.equal((await peerGot).err?.code, 'ECONNRESET');
    t.equal(engine.live, 0);
  });

  t.test('preloaded bytes (read before the hand-over) come first, then the socket', async (t) => {
    const keys = keyPairs();
    const first = Buffer.concat([sealUnit(keys.b.up, 0, Buffer.from('one,')), sealUnit(keys.b.up, 1, Buffer.from('two,'))]);
    const { client, peer, ended, pair } = await pairWithPeer(t, keys.a, first);
    const got = drain(client);
    peer.write(sealUnit(keys.b.up, 2, Buffer.from('three')));
    peer.write(sealUnit(keys.b.up, 3, Buffer.alloc(0), true));
    const c = await got;
    t.equal(c.data.toString(), 'one,two,three');
    t.equal(c.err, undefined, 'FIN became a clean end');
    t.equal(pair.down, 13, 'live counter');
    client.end();
    peer.resume();
    t.equal((await ended).code, '');
  });

  t.test('units coalesced in one segment, and one unit dribbled a byte at a time, open in order', async (t) => {
    const keys = keyPairs();
    const { client, peer, ended } = await pairWithPeer(t, keys.a);
    const got = drain(client);
    const parts = Array.from({ length: 50 }, (_, i) => Buffer.from(`part ${i};`));
    const big = randomBytes(40_000);
    // 50 small units in one write: one read brings several, the rest wait in the buffer.
    peer.write(Buffer.concat(parts.map((p, i) => sealUnit(keys.b.up, i, p))));
    // Then a 40 KB unit (larger than the first read) sent byte by byte for its first 64 bytes.
    const unit = sealUnit(keys.b.up, 50, big);
    for (let i = 0; i < 64; i++) {
      peer.write(unit.subarray(i, i + 1));
      await new Promise((r) => setImmediate(r));
    }
    peer.write(unit.subarray(64));
    peer.write(sealUnit(keys.b.up, 51, Buffer.alloc(0), true));
    const c = await got;
    t.equal(sha(c.data), sha(Buffer.concat([...parts, big])), 'every byte, in order');
    client.end();
    peer.resume();
    t.equal((await ended).code, '');
  });

  t.test('bytes after a FIN unit are a protocol error', async (t) => {
    const keys = keyPairs();
    const { client, peer, ended } = await pairWithPeer(t, keys.a);
    const got = drain(client);
    peer.write(Buffer.concat([sealUnit(keys.b.up, 0, Buffer.from('x')), sealUnit(keys.b.up, 1, Buffer.alloc(0), true), sealUnit(keys.b.up, 2, Buffer.from('y'))]));
    t.equal((await ended).code, 'PROTOCOL_ERROR');
    t.equal((await got).err?.code, 'ECONNRESET');
  });

  t.test('property: any units in any chunking arrive intact; a flipped bit releases only a verified prefix', async (t) => {
    // The unit parser's fuzz target (fast-check): random payload sizes (1 B .. 256 KiB), the sealed
    // stream cut into random write sizes, and sometimes one bit flipped anywhere in it.
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 256 * 1024 }), { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 20 }),
        fc.option(fc.nat(), { nil: undefined }),
        async (sizes, cuts, flip) => {
          const keys = keyPairs();
          const sub = { teardown: (fn: () => unknown) => void cleanups.push(fn) } as unknown as Test;
          const cleanups: (() => unknown)[] = [];
          try {
            const { client, peer, ended } = await pairWithPeer(sub, keys.a);
            const got = drain(client);
            const payloads = sizes.map((n) => randomBytes(n));
            const stream = Buffer.concat([...payloads.map((p, i) => sealUnit(keys.b.up, i, p)), sealUnit(keys.b.up, payloads.length, Buffer.alloc(0), true)]);
            if (flip !== undefined) stream[flip % stream.length]! ^= 1 << (flip % 8);
            for (let off = 0, i = 0; off < stream.length; i++) {
              const n = cuts[i % cuts.length]!;
              peer.write(stream.subarray(off, off + n));
              off += n;
            }
            // (A flipped length bit can leave the engine waiting for bytes: the end tells it there are none.)
            if (flip !== undefined) peer.end();
            const plain = Buffer.concat(payloads);
            const c = await got;
            client.end();
            peer.resume();
            const r = await ended;
            if (flip === undefined) {
              if (r.code !== '' || !c.data.equals(plain)) return false;
            } else {
              // Released bytes are always a prefix of what was sealed, ending at a unit boundary.
              if (!plain.subarray(0, c.data.length).equals(c.data)) return false;
              if (r.code === '' && !c.data.equals(plain)) return false;
            }
            return true;
          } finally {
            for (const fn of cleanups) await fn();
          }
        },
      ),
      { numRuns: 40 },
    );
    t.equal(engine.live, 0);
  });

  t.test('an idle pair holds no unit buffers: 200 idle pairs, then each one used', async (t) => {
    const pairs = [];
    for (let i = 0; i < 200; i++) {
      const keys = keyPairs();
      pairs.push({ keys, ...(await pairWithPeer(t, keys.a)) });
    }
    t.equal(engine.live, 200);
    await Promise.all(
      pairs.map(async ({ keys, client, peer, ended }, i) => {
        const got = drain(client);
        peer.write(sealUnit(keys.b.up, 0, Buffer.from(`pair ${i}`)));
        peer.write(sealUnit(keys.b.up, 1, Buffer.alloc(0), true));
        t.equal((await got).data.toString(), `pair ${i}`);
        client.end();
        peer.resume();
        await ended;
      }),
    );
    t.equal(engine.live, 0);
  });

  t.test('a socket Node already read from is refused', async (t) => {
    const [a, b] = await unreadPair(t);
    const [c] = await unreadPair(t);
    b.write('x');
    a.resume();
    a.pause();
    await new Promise((r) => setTimeout(r, 50));
    a.on('data', () => undefined);
    t.throws(() => engine.add(a, c, keyPairs().a), /unread bytes|descriptor/);
  });

  t.test('firstByte shows the first waiting byte without reading it; -1 before bytes, at the end, once destroyed', async (t) => {
    const [a, b] = await unreadPair(t);
    t.equal(engine.firstByte(a), -1, 'nothing has arrived');
    b.write(Buffer.from([0x16, 0x03, 0x01]));
    let first = -1;
    for (let i = 0; i < 200 && first < 0; i++) {
      await new Promise((r) => setTimeout(r, 5));
      first = engine.firstByte(a);
    }
    t.equal(first, 0x16);
    t.equal(engine.firstByte(a), 0x16, 'peeking again sees the same byte');
    const got = once(a, 'data') as Promise<[Buffer]>;
    a.resume();
    t.same([...(await got)[0]], [0x16, 0x03, 0x01], 'nothing was consumed');
    // The peer's end, seen by Node (the socket stays open: allowHalfOpen): the end is not a byte.
    const ended = once(a, 'end');
    b.end();
    await ended;
    t.equal(a.destroyed, false, 'still open after the end');
    t.equal(engine.firstByte(a), -1, 'at the end: -1');
    a.destroy();
    t.equal(engine.firstByte(a), -1, 'destroyed');
  });
}
