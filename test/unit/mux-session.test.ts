import t, { type Test } from 'tap';
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { PorticoError } from '../../shared/errors.js';
import { encodeFrameHeader, Flag, FrameType, GoAwayCode, HEADER_LENGTH, Session, type MuxStream, type SessionOptions } from '../../shared/mux/index.js';
import { socketPair } from '../helpers/socket-pair.js';
import { sessionPair, type SessionPair as Pair } from '../helpers/session-pair.js';
import { atTurnEnd } from '../../shared/util/turn-end.js';



function nextStream(s: Session): Promise<MuxStream> {
  return new Promise((resolve) => s.once('stream', resolve));
}

function readAll(s: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.once('end', () => resolve(Buffer.concat(parts)));
    s.once('error', reject);
  });
}

/** Streams `total` random bytes in `chunk`-sized writes honouring backpressure; resolves to their sha256. */
async function sendRandom(s: Duplex, total: number, chunk = 64 * 1024, end = true): Promise<string> {
  const h = createHash('sha256');
  let sent = 0;
  while (sent < total) {
    const n = Math.min(chunk, total - sent);
    const buf = randomBytes(n);
    h.update(buf);
    sent += n;
    if (!s.write(buf)) await once(s, 'drain');
  }
  if (end) s.end();
  return h.digest('hex');
}

function hashStream(s: Duplex): Promise<{ hash: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let bytes = 0;
    s.on('data', (d: Buffer) => {
      h.update(d);
      bytes += d.length;
    });
    s.once('end', () => resolve({ hash: h.digest('hex'), bytes }));
    s.once('error', reject);
  });
}

/** A client session over a loopback socket whose far end only records what arrives (the raw wire). */
async function clientOverRaw(t: Test): Promise<{ cs: net.Socket; client: Session; got: Buffer[] }> {
  const [cs, raw] = await socketPair(t);
  const client = new Session(cs, { isClient: true, keepaliveInterval: 0 });
  t.teardown(() => client.destroy());
  const got: Buffer[] = [];
  raw.on('data', (d: Buffer) => got.push(d));
  return { cs, client, got };
}

/** Counts calls into a socket's own write path (one per flush: corked chunks go as one writev). */
function countWrites(sock: net.Socket): () => number {
  let n = 0;
  const s = sock as unknown as { _write: (...x: unknown[]) => void; _writev: (...x: unknown[]) => void };
  const w = s._write.bind(sock);
  const wv = s._writev.bind(sock);
  s._write = (...x) => {
    n++;
    w(...x);
  };
  s._writev = (...x) => {
    n++;
    wv(...x);
  };
  return () => n;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(5);
  }
}

function endChecks(tt: Test, p: Pair): void {
  tt.equal(p.client.streamCount, 0, 'client has no streams left');
  tt.equal(p.server.streamCount, 0, 'server has no streams left');
}

const isClosed = (s: Duplex): Promise<void> => (s.closed ? Promise.resolve() : once(s, 'close').then(() => undefined));

t.test('open and accept in both directions', async (t) => {
  const p = await sessionPair(t);
  const fromClient = nextStream(p.server);
  const a = p.client.open();
  t.equal(a.id, 1, 'client ids are odd');
  a.end('hello from client');
  const a2 = await fromClient;
  t.equal(a2.id, 1);
  t.equal((await readAll(a2)).toString(), 'hello from client');
  a2.end();
  await readAll(a);

  const fromServer = nextStream(p.client);
  const b = p.server.open();
  t.equal(b.id, 2, 'server ids are even');
  b.end('hello from server');
  const b2 = await fromServer;
  t.equal((await readAll(b2)).toString(), 'hello from server');
  b2.end();
  await readAll(b);
  await Promise.all([a, a2, b, b2].map(isClosed));
  endChecks(t, p);
});

t.test('the peer sees a stream that is opened and never written, and SYN rides on a same-tick write', async (t) => {
  const { client, got } = await clientOverRaw(t);
  client.open(); // id 1: never written
  const s3 = client.open(); // id 3: written in the same tick
  s3.write('x');
  await until(() => Buffer.concat(got).length >= 3 * HEADER_LENGTH + 1);
  const wire = Buffer.concat(got);
  // Id order is kept: the SYN of stream 1 goes first, then stream 3's data frame carries its own SYN.
  t.same([wire[1], wire.readUInt16BE(2), wire.readUInt32BE(4), wire.readUInt32BE(8)], [FrameType.WindowUpdate, Flag.SYN, 1, 4 * 1024 * 1024 - 256 * 1024]);
  t.same([wire[13], wire.readUInt16BE(14), wire.readUInt32BE(16), wire.readUInt32BE(20)], [FrameType.Data, Flag.SYN, 3, 1]);
  t.equal(wire[24], 'x'.charCodeAt(0));
  t.same([wire[26], wire.readUInt16BE(27), wire.readUInt32BE(29)], [FrameType.WindowUpdate, 0, 3], 'extra credit follows the data frame');
});

t.test('frames written by separate callbacks of one event-loop turn leave in one socket write', async (t) => {
  const { cs, client, got } = await clientOverRaw(t);
  const a = client.open();
  const b = client.open();
  a.write('a');
  b.write('b');
  await until(() => Buffer.concat(got).length >= 2 * (2 * HEADER_LENGTH + 1));
  const writes = countWrites(cs);
  const before = Buffer.concat(got).length;
  // Two writes with a nextTick drain between them, as between two I/O callbacks (or timers) of one
  // turn. (Two setTimeout(0) can land in different turns: each takes its start time from a clock
  // that may tick between them, and it did once under a loaded CI.)
  setTimeout(() => {
    a.write('A');
    process.nextTick(() => b.write('B'));
  }, 0);
  await until(() => Buffer.concat(got).length >= before + 2 * (HEADER_LENGTH + 1));
  t.equal(writes(), 1, 'both data frames went out in one write');
});

t.test('frames written by end-of-turn work (a UDP batch) leave in that same pass, not a turn later', async (t) => {
  const { cs, client, got } = await clientOverRaw(t);
  const a = client.open();
  a.write('a');
  await until(() => Buffer.concat(got).length >= 2 * HEADER_LENGTH + 1);
  const writes = countWrites(cs);
  const seen = await new Promise<number>((resolve) =>
    atTurnEnd(() => {
      // The next turn's first look: by then the frame must have reached the socket's write path.
      setImmediate(() => resolve(writes()));
      a.write('X');
    }),
  );
  t.equal(seen, 1, 'the data frame was written in the pass that produced it');
});

t.test('32 MiB each way on one stream, sha256 equal', async (t) => {
  const p = await sessionPair(t);
  const total = 32 * 1024 * 1024;
  const accepted = nextStream(p.server);
  const a = p.client.open();
  const clientRecv = hashStream(a);
  const clientSent = sendRandom(a, total);
  const b = await accepted;
  const serverRecv = hashStream(b);
  const serverSent = sendRandom(b, total);
  const [cs, cr, ss, sr] = await Promise.all([clientSent, clientRecv, serverSent, serverRecv]);
  t.equal(sr.bytes, total);
  t.equal(cr.bytes, total);
  t.equal(sr.hash, cs, 'client to server intact');
  t.equal(cr.hash, ss, 'server to client intact');
  await Promise.all([isClosed(a), isClosed(b)]);
  endChecks(t, p);
});

t.test('200 concurrent streams x 1 MiB echo intact', async (t) => {
  const p = await sessionPair(t, {}, { onStream: (s) => s.pipe(s) });
  const size = 1024 * 1024;
  const results = await Promise.all(
    Array.from({ length: 200 }, async () => {
      const s = p.client.open();
      const data = randomBytes(size);
      const back = readAll(s);
      s.end(data);
      const got = await back;
      return got.length === size && got.equals(data);
    }),
  );
  t.equal(results.filter(Boolean).length, 200, 'all 200 echoes intact');
  await until(() => p.client.streamCount === 0 && p.server.streamCount === 0);
  endChecks(t, p);
});

t.test('half-close: client ends, server still replies, both see a clean end', async (t) => {
  const p = await sessionPair(t);
  const accepted = nextStream(p.server);
  const a = p.client.open();
  a.end('request');
  const b = await accepted;
  const req = await readAll(b);
  t.equal(req.toString(), 'request', 'server got the request and its end');
  t.equal(p.server.streamCount, 1, 'half-closed stream still open');
  const reply = readAll(a);
  b.write('reply part 1, ');
  await sleep(20);
  b.end('part 2');
  t.equal((await reply).toString(), 'reply part 1, part 2');
  const errs: unknown[] = [];
  a.on('error', (e) => errs.push(e));
  b.on('error', (e) => errs.push(e));
  await Promise.all([isClosed(a), isClosed(b)]);
  t.same(errs, [], 'no errors');
  endChecks(t, p);
});

t.test('window exhaustion: an unread stream stalls at one window, another stream completes', async (t) => {
  const win = 1024 * 1024;
  const p = await sessionPair(t, { maxStreamWindow: win }, { maxStreamWindow: win });
  const streams: MuxStream[] = [];
  p.server.on('stream', (s: MuxStream) => streams.push(s));
  const slow = p.client.open();
  const fast = p.client.open();
  const total = 8 * 1024 * 1024;
  let slowDone = false;
  const slowSent = sendRandom(slow, total).then((h) => {
    slowDone = true;
    return h;
  });
  await until(() => streams.length === 2);
  const [slowIn, fastIn] = streams as [MuxStream, MuxStream];
  t.equal(slowIn.id, slow.id);
  // Nobody reads slowIn. The other stream still moves 16 MiB.
  const fastRecv = hashStream(fastIn);
  const fastHash = await sendRandom(fast, 16 * 1024 * 1024);
  t.equal((await fastRecv).hash, fastHash, 'other stream completes while one is stalled');
  await sleep(100);
  t.ok(slowIn.readableLength <= win, `receiver buffers at most one window (${slowIn.readableLength} <= ${win})`);
  t.ok(slowIn.readableLength >= win / 2, 'and the sender did fill it');
  t.notOk(slowDone, 'the sender is stalled');
  t.equal(slow._sendWindow, 0, 'sender window exhausted');
  // Reading resumes the sender immediately (no timers involved).
  const slowRecv = hashStream(slowIn);
  const [h1, r1] = await Promise.all([slowSent, slowRecv]);
  t.equal(r1.hash, h1, 'stalled stream completes intact once read');
  fastIn.end();
  slowIn.end();
  await Promise.all([slow, fast, slowIn, fastIn].map((s) => (s.resume(), isClosed(s))));
  endChecks(t, p);
});

t.test('send-side backpressure: a peer that grants window but never reads bounds our buffers', async (t) => {
  const [cs, raw] = await socketPair(t);
  const client = new Session(cs, { isClient: true, keepaliveInterval: 0 });
  t.teardown(() => client.destroy());
  raw.pause(); // never read: the kernel buffers fill, then socket.write() returns false
  const s = client.open();
  s.on('error', () => {});
  // Simulate the peer's huge grant locally so only the socket can push back.
  s._onWindowUpdate(0x7fffffff);
  let acked = 0;
  let writes = 0;
  const chunk = Buffer.alloc(64 * 1024);
  const deadline = Date.now() + 1500;
  while (Date.now() < deadline && acked < 256 * 1024 * 1024) {
    writes++;
    const ok = s.write(chunk, () => (acked += chunk.length));
    if (!ok) {
      const drained = await Promise.race([once(s, 'drain').then(() => true), sleep(300).then(() => false)]);
      if (!drained) break;
    }
  }
  t.ok(acked < 64 * 1024 * 1024, `write callbacks stop when the socket is full (${(acked / 1048576).toFixed(1)} MiB acked)`);
  t.ok(cs.writableLength < 8 * 1024 * 1024, `socket user-space buffer stays bounded (${cs.writableLength} bytes)`);
  // Control frames are not stuck behind the blocked data.
  const before = cs.writableLength;
  client.goAway();
  await sleep(5);
  t.ok(cs.writableLength >= before + HEADER_LENGTH, 'GoAway was written despite the blocked socket');
  t.ok(writes > 0);
});

t.test('RST both ways', async (t) => {
  const p = await sessionPair(t);
  const accepted = nextStream(p.server);
  const a = p.client.open();
  a.write('x');
  const b = await accepted;
  const bErr = once(b, 'error');
  a.destroy();
  const [e1] = (await bErr) as [NodeJS.ErrnoException];
  t.equal(e1.code, 'ECONNRESET', 'client RST -> server stream errors with ECONNRESET');

  const fromServer = nextStream(p.client);
  const c = p.server.open();
  c.write('y');
  const d = await fromServer;
  const dErr = once(d, 'error');
  c.destroy();
  const [e2] = (await dErr) as [NodeJS.ErrnoException];
  t.equal(e2.code, 'ECONNRESET', 'server RST -> client stream errors with ECONNRESET');
  await until(() => p.client.streamCount === 0 && p.server.streamCount === 0);
  endChecks(t, p);
  t.notOk(p.client.closed, 'session survives stream resets');
  t.ok((await p.client.ping()) >= 0);
});

t.test('GoAway: no new streams either way, existing streams continue, SYN after our GoAway is RST', async (t) => {
  const p = await sessionPair(t, {}, { onStream: (s) => s.pipe(s) });
  const existing = p.client.open();
  existing.write('before ');
  await until(() => p.server.streamCount === 1);
  const goaway = once(p.client, 'goaway');
  p.server.goAway();
  // Opened before the client heard of the GoAway: the server must reset it.
  const late = p.client.open();
  late.write('too late');
  const [lateErr] = (await once(late, 'error')) as [NodeJS.ErrnoException];
  t.equal(lateErr.code, 'ECONNRESET', 'SYN after GoAway is reset');
  const [code] = await goaway;
  t.equal(code, GoAwayCode.Normal, "'goaway' event with the code");
  t.throws(() => p.client.open(), { code: 'SHUTTING_DOWN' }, 'client cannot open after receiving GoAway');
  t.throws(() => p.server.open(), { code: 'SHUTTING_DOWN' }, 'server cannot open after sending GoAway');
  const echoed = readAll(existing);
  existing.end('after');
  t.equal((await echoed).toString(), 'before after', 'existing stream keeps working');
  await until(() => p.client.streamCount === 0 && p.server.streamCount === 0);
  endChecks(t, p);
});

t.test('close(): GoAway, waits for open streams, then ends the socket', async (t) => {
  const p = await sessionPair(t, {}, { onStream: (s) => s.pipe(s) });
  const serverClosed = once(p.server, 'close');
  const s = p.client.open();
  const back = readAll(s);
  s.write('a');
  let closed = false;
  const closing = p.client.close().then(() => (closed = true));
  await sleep(50);
  t.notOk(closed, 'close() waits for the open stream');
  s.end('b');
  t.equal((await back).toString(), 'ab');
  await closing;
  t.ok(p.client.closed);
  await serverClosed;
  t.ok(p.server.closed, 'peer session closes when the socket ends');
  await Promise.all([isClosed(p.cs), isClosed(p.ss)]);
  endChecks(t, p);
  t.equal(p.client.listenerCount('close') + p.server.listenerCount('close') + p.cs.listenerCount('data') + p.ss.listenerCount('data'), 0, 'no listeners left');
});

t.test('ping measures RTT; keepalive kills a session whose peer stops answering', async (t) => {
  const p = await sessionPair(t);
  const rtt = await p.client.ping();
  t.ok(rtt >= 0 && rtt < 1000, `rtt ${rtt.toFixed(3)} ms`);

  const [cs, raw] = await socketPair(t);
  raw.pause(); // the peer is alive at TCP level but never reads or answers
  const started = Date.now();
  const dying = new Session(cs, { isClient: true, keepaliveInterval: 50, keepaliveTimeout: 300 });
  const [err] = (await once(dying, 'close')) as [PorticoError];
  const took = Date.now() - started;
  t.ok(err instanceof PorticoError && err.code === 'TIMEOUT', 'closed with TIMEOUT');
  t.ok(took >= 280 && took < 2000, `detected in ${took} ms (timeout 300; a loaded machine may run the timer late)`);
  t.equal((dying as unknown as { keepaliveTimer: unknown }).keepaliveTimer, null, 'keepalive timer cleared');
  t.equal(dying.listenerCount('close') + cs.listenerCount('data') + cs.listenerCount('close') + cs.listenerCount('drain'), 0, 'no listeners left');
  await isClosed(cs);
});

t.test('keepalive: a busy link never times out, even if the peer never pings', async (t) => {
  // The timeout is well above event-loop stalls of a loaded 2-core machine (hundreds of ms seen).
  const p = await sessionPair(t, { keepaliveInterval: 300, keepaliveTimeout: 1_000 }, { keepaliveInterval: 0 });
  const accepted = nextStream(p.client);
  const s = p.server.open();
  const end = Date.now() + 3_000;
  const feeding = (async () => {
    while (Date.now() < end) {
      s.write(Buffer.alloc(1024));
      await sleep(10);
    }
    s.end();
  })();
  const c = await accepted;
  c.resume();
  await feeding;
  await once(c, 'end');
  c.end();
  t.notOk(p.client.closed, 'client session alive after 3x its keepalive timeout of traffic');
  await until(() => p.client.streamCount === 0 && p.server.streamCount === 0);
  endChecks(t, p);
});

t.test('keepalive: an idle but healthy link stays up (pings answered)', async (t) => {
  // Dozens of ping rounds; the timeout is well above event-loop stalls of a loaded machine.
  const p = await sessionPair(t, { keepaliveInterval: 100, keepaliveTimeout: 1_500 }, { keepaliveInterval: 100, keepaliveTimeout: 1_500 });
  await sleep(3_000);
  t.notOk(p.client.closed);
  t.notOk(p.server.closed);
});

t.test('sequential open/close frees every stream', async (t) => {
  const n = 100_000;
  const p = await sessionPair(t, {}, {
    onStream: (s) => {
      s.resume();
      s.end();
    },
  });
  const started = Date.now();
  let lastId = 0;
  for (let i = 0; i < n; i++) {
    const s = p.client.open();
    lastId = s.id;
    s.resume();
    s.end();
    await once(s, 'close');
  }
  await until(() => p.server.streamCount === 0);
  t.equal(lastId, 2 * n - 1, 'ids are never reused');
  t.pass(`${n} streams in ${Date.now() - started} ms`);
  endChecks(t, p);
});

t.test('stream id exhaustion throws, existing streams unaffected', async (t) => {
  const p = await sessionPair(t, { firstStreamId: 0xfffffffd }, { onStream: (s) => s.pipe(s) });
  const a = p.client.open();
  const b = p.client.open();
  t.equal(b.id, 0xffffffff);
  t.throws(() => p.client.open(), { code: 'INTERNAL' });
  const back = readAll(b);
  b.end('still works');
  t.equal((await back).toString(), 'still works');
  a.end();
  a.resume();
  await until(() => p.client.streamCount === 0 && p.server.streamCount === 0);
  endChecks(t, p);
});

t.test('maxStreams: an inbound SYN beyond the limit is reset', async (t) => {
  const p = await sessionPair(t, {}, { maxStreams: 2, onStream: (s) => s.on('error', () => {}) });
  const a = p.client.open();
  const b = p.client.open();
  const c = p.client.open();
  for (const s of [a, b, c]) s.write('x');
  const [err] = (await once(c, 'error')) as [NodeJS.ErrnoException];
  t.equal(err.code, 'ECONNRESET');
  t.equal(p.server.streamCount, 2);
  a.destroy();
  b.destroy();
  await until(() => p.client.streamCount === 0 && p.server.streamCount === 0);
  endChecks(t, p);
});

async function rawToServer(t: Test, bytes: Buffer, sopts: Partial<SessionOptions> = {}): Promise<{ err: unknown; goAway: Buffer }> {
  const [raw, ss] = await socketPair(t);
  const server = new Session(ss, { isClient: false, keepaliveInterval: 0, onStream: (s) => s.on('error', () => {}), ...sopts });
  const got: Buffer[] = [];
  raw.on('data', (d: Buffer) => got.push(d));
  const closed = once(server, 'close');
  raw.write(bytes);
  const [err] = await closed;
  await isClosed(raw);
  return { err, goAway: Buffer.concat(got) };
}

function frame(type: number, flags: number, streamId: number, length: number, payload?: Buffer): Buffer {
  const h = encodeFrameHeader({ type: type as FrameType, flags, streamId, length });
  return payload ? Buffer.concat([h, payload]) : h;
}

t.test('malformed input -> GoAway(protocol error) and PROTOCOL_ERROR; only that session dies', async (t) => {
  const bystander = await sessionPair(t);
  const cases: Array<[string, Buffer]> = [
    ['garbage bytes', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    ['bad version', Buffer.from([1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0])],
    ['unknown type', Buffer.from([0, 9, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0])],
    ['data for a never-opened stream', frame(FrameType.Data, 0, 5, 3, Buffer.from('abc'))],
    ['data beyond the window', Buffer.concat([frame(FrameType.WindowUpdate, Flag.SYN, 1, 0), frame(FrameType.Data, 0, 1, 256 * 1024 + 1, Buffer.alloc(256 * 1024 + 1))])],
    ['oversized window', Buffer.concat([frame(FrameType.WindowUpdate, Flag.SYN, 1, 0xffff0000), frame(FrameType.WindowUpdate, 0, 1, 0xffff0000)])],
    ['SYN with the wrong parity', frame(FrameType.WindowUpdate, Flag.SYN, 2, 0)],
    ['duplicate SYN', Buffer.concat([frame(FrameType.WindowUpdate, Flag.SYN, 1, 0), frame(FrameType.WindowUpdate, Flag.SYN, 1, 0)])],
    ['ping on a stream', frame(FrameType.Ping, Flag.SYN, 1, 0)],
  ];
  for (const [name, bytes] of cases) {
    const { err, goAway } = await rawToServer(t, bytes);
    t.ok(err instanceof PorticoError && err.code === 'PROTOCOL_ERROR', `${name}: PROTOCOL_ERROR (${(err as Error).message})`);
    const ga = goAway.subarray(goAway.length - HEADER_LENGTH);
    t.same([ga[1], ga.readUInt32BE(8)], [FrameType.GoAway, GoAwayCode.ProtocolError], `${name}: GoAway(protocol error) sent`);
  }
  t.notOk(bystander.client.closed);
  t.ok((await bystander.client.ping()) >= 0, 'other sessions unaffected');
});

t.test('tolerated: frames for streams that were closed are discarded, not errors', async (t) => {
  const [raw, ss] = await socketPair(t);
  const server = new Session(ss, { isClient: false, keepaliveInterval: 0 });
  t.teardown(() => server.destroy());
  server.on('stream', (s: MuxStream) => s.destroy()); // reset at once
  raw.resume();
  raw.write(frame(FrameType.WindowUpdate, Flag.SYN, 1, 0));
  await sleep(30);
  // In flight before we saw the RST: data, window update and FIN on stream 1.
  raw.write(Buffer.concat([frame(FrameType.Data, 0, 1, 4, Buffer.from('late')), frame(FrameType.WindowUpdate, Flag.FIN, 1, 10)]));
  // And a ping, answered: the session is alive.
  const pong = new Promise<Buffer>((resolve) => raw.on('data', (d: Buffer) => d.includes(Buffer.from([0, 2, 0, 2])) && resolve(d)));
  raw.write(frame(FrameType.Ping, Flag.SYN, 0, 42));
  await pong;
  t.notOk(server.closed);
  t.equal(server.streamCount, 0);
});

t.test('destroy(err): streams destroyed with err, socket destroyed, close event carries err', async (t) => {
  const p = await sessionPair(t, {}, { onStream: (s) => s.on('error', (e: NodeJS.ErrnoException) => t.equal(e.code, 'ECONNRESET', 'peer stream sees the connection lost')) });
  const s = p.client.open();
  s.write('x');
  const boom = new Error('boom');
  const sErr = once(s, 'error');
  const closed = once(p.client, 'close');
  const pinging = p.client.ping(5000).catch((e: Error) => e);
  p.client.destroy(boom);
  t.equal((await sErr)[0], boom);
  t.equal((await closed)[0], boom);
  t.equal(await pinging, boom, 'pending pings rejected');
  t.ok(p.cs.destroyed);
  t.throws(() => p.client.open(), { code: 'SHUTTING_DOWN' });
  await once(p.server, 'close');
  endChecks(t, p);
});

t.test('probe: a pong or any other frame within the timeout is alive; silence or a closed session is not', async (t) => {
  // Answers pings: alive at once.
  const p = await sessionPair(t);
  t.equal(await p.client.probe(2_000), true, 'a peer that answers the ping is alive');

  // A peer that never answers our ping but keeps sending frames (here its own pings,
  // as a busy agent's data would arrive while its pong queues behind it): alive.
  const [cs, raw] = await socketPair(t);
  const client = new Session(cs, { isClient: true, keepaliveInterval: 0 });
  t.teardown(() => client.destroy());
  raw.on('data', () => {}); // reads our ping, never answers it
  let n = 0;
  const chatter = setInterval(() => raw.write(encodeFrameHeader({ type: FrameType.Ping, flags: Flag.SYN, streamId: 0, length: 1000 + n++ })), 40);
  t.teardown(() => clearInterval(chatter));
  t.equal(await client.probe(300), true, 'frames other than the pong count as a sign of life');
  t.ok(n > 0, 'the peer sent frames during the probe');

  // Silent: the same peer stops sending; the probe fails after its timeout.
  clearInterval(chatter);
  await new Promise((r) => setTimeout(r, 50)); // the last chatter frame is in
  const started = Date.now();
  t.equal(await client.probe(300), false, 'a peer that sends nothing within the timeout is not alive');
  t.ok(Date.now() - started >= 290, 'the probe waited its whole timeout');

  // Closed session: not alive, at once.
  client.destroy();
  t.equal(await client.probe(300), false, 'a closed session is not alive');
});

t.test('a peer that floods pings and never reads is disconnected once the pongs queued for it pass the limit', async (t) => {
  const [cs, raw] = await socketPair(t);
  const session = new Session(cs, { isClient: true, keepaliveInterval: 0, sendBudget: 64 * 1024 });
  t.teardown(() => session.destroy());
  raw.pause(); // never reads: the kernel buffers fill, then the session's own queue grows
  raw.on('error', () => undefined);
  const closed = once(session, 'close') as Promise<[Error | undefined]>;
  const pings = Buffer.concat(Array.from({ length: 4096 }, (_, i) => encodeFrameHeader({ type: FrameType.Ping, flags: Flag.SYN, streamId: 0, length: i + 1 })));
  let sent = 0;
  const deadline = Date.now() + 20_000;
  while (!session.closed && sent < 32 * 1024 * 1024 && Date.now() < deadline) {
    if (!raw.write(pings)) await Promise.race([once(raw, 'drain'), new Promise((r) => setTimeout(r, 50))]);
    sent += pings.length;
    await new Promise((r) => setImmediate(r));
  }
  const [err] = await closed;
  t.ok(session.closed, `the session ended after ${(sent / 1024 / 1024).toFixed(1)} MiB of pings`);
  t.match(err, { code: 'PROTOCOL_ERROR', message: /yamux peer does not read: \d+ bytes queued for it \(limit \d+\)/ });
  t.ok(cs.destroyed, 'its socket is destroyed at once (nothing more is queued for it)');
});
