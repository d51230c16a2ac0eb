// SocketReader (net's onread with our own growing buffers), adoptAccepted (an
// accepted socket re-made to read through one) and splice over both: bytes
// exact, buffers grow for bulk and shrink back, backpressure stops reading,
// the server's connection count follows the adopted socket.
import t, { type Test } from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { adoptAccepted, MAX_READ, pooledReadBuffers, releaseRead, SHARED_READ, SocketReader, withReader } from '../../shared/util/socket-reader.js';
import { claimHeadroom, HEADROOM } from '../../shared/util/headroom.js';
import { splice } from '../../shared/util/splice.js';
import { FrameType, HEADER_LENGTH } from '../../shared/mux/index.js';
import { sessionPair } from '../helpers/session-pair.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function listen(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

/** A server that sends `payload` and ends, and a client reading it through a new SocketReader. */
async function readerOf(t: Test, payload: Buffer): Promise<{ reader: SocketReader; sock: net.Socket }> {
  const server = net.createServer((s) => s.end(payload));
  const port = await listen(server);
  t.teardown(() => server.close());
  const reader = new SocketReader();
  const sock = net.connect(withReader({ port, host: '127.0.0.1' }, reader));
  t.teardown(() => sock.destroy());
  return { reader, sock };
}

t.test('bulk reads grow to MAX_READ, small reads copy out and shrink the buffer back', async (t) => {
  const payload = randomBytes(8 * 1024 * 1024);
  let peer!: net.Socket;
  const server = net.createServer((s) => {
    peer = s;
    s.write(payload);
  });
  const port = await listen(server);
  t.teardown(() => server.close());
  const reader = new SocketReader();
  const chunks: Buffer[] = [];
  let got = 0;
  let gotAll!: () => void;
  const all = new Promise<void>((r) => (gotAll = r));
  reader.attach((c) => {
    chunks.push(c);
    got += c.length;
    if (got === payload.length) gotAll();
    return true;
  });
  t.notOk(reader.ownsBuffer, 'a new reader pins no buffer of its own');
  const sock = net.connect(withReader({ port, host: '127.0.0.1' }, reader));
  t.teardown(() => sock.destroy());
  await all;
  t.ok(reader.ownsBuffer, 'bulk reads use a buffer of its own');
  t.equal(sha(Buffer.concat(chunks)), sha(payload), '8 MiB arrive intact');
  t.equal(Math.max(...chunks.map((c) => c.length)), MAX_READ, 'a bulk transfer reads 256 KiB at a time');
  t.equal(reader.bufferSize, MAX_READ);
  // Now a trickle: each small read is its own small Buffer, and the big buffer goes.
  const before = chunks.length;
  for (let i = 0; i < 6; i++) {
    peer.write(Buffer.alloc(100, i));
    while (got < payload.length + 100 * (i + 1)) await new Promise((r) => setTimeout(r, 5));
  }
  const small = chunks.slice(before);
  t.ok(small.every((c) => c.length <= 100 && c.buffer.byteLength < MAX_READ), 'small reads do not pin the large buffer');
  t.equal(reader.bufferSize, SHARED_READ, 'buffer shrank back after a few small reads');
  t.notOk(reader.ownsBuffer, '... to the shared one');
});

t.test('a consumer returning false stops reading until resume()', async (t) => {
  const payload = randomBytes(4 * 1024 * 1024);
  const { reader, sock } = await readerOf(t, payload);
  const parts: Buffer[] = [];
  let stopped = false;
  let pausedAt = -1;
  reader.attach((c) => {
    t.notOk(stopped, 'no chunk while stopped', { diagnostic: false });
    parts.push(c);
    if (pausedAt < 0) {
      pausedAt = parts.length;
      stopped = true;
      setTimeout(() => {
        stopped = false;
        sock.resume();
      }, 100);
      return false;
    }
    return true;
  });
  sock.resume();
  await once(sock, 'end');
  t.equal(sha(Buffer.concat(parts)), sha(payload), 'everything after the pause arrives, in order');
});

t.test('data read before a consumer attaches is queued', async (t) => {
  const server = net.createServer((s) => s.end('early bytes'));
  const port = await listen(server);
  t.teardown(() => server.close());
  const reader = new SocketReader();
  const sock = net.connect(withReader({ port, host: '127.0.0.1' }, reader));
  sock.resume();
  await once(sock, 'end');
  const got: Buffer[] = [];
  reader.attach((c) => (got.push(c), true));
  t.equal(Buffer.concat(got).toString(), 'early bytes');
  sock.destroy();
});

t.test('adoptAccepted + splice with readers on both sides: an echo round trip is byte-exact, half-close passes, counts follow', async (t) => {
  // upstream echo: echoes and ends when the client ends
  const upstream = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
  const upPort = await listen(upstream);
  t.teardown(() => upstream.close());
  let adoptedSock: net.Socket | null = null;
  const front = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (accepted) => {
    const ra = new SocketReader();
    const a = adoptAccepted(accepted, ra, { allowHalfOpen: true });
    t.ok(a, 'adopted');
    adoptedSock = a!;
    const rb = new SocketReader();
    const b = net.connect(withReader({ port: upPort, host: '127.0.0.1', allowHalfOpen: true }, rb));
    b.once('connect', () => splice(a!, b, undefined, undefined, { a: ra, b: rb }));
  });
  const port = await listen(front);
  const payload = randomBytes(6 * 1024 * 1024 + 123);
  const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await once(client, 'connect');
  const back: Buffer[] = [];
  client.on('data', (d: Buffer) => back.push(d));
  client.write(payload);
  while (back.reduce((n, b) => n + b.length, 0) < payload.length) await new Promise((r) => setTimeout(r, 10));
  const count = await new Promise<number>((r, j) => front.getConnections((e, n) => (e ? j(e) : r(n))));
  t.equal(count, 1, 'the server counts the adopted connection while it is open');
  client.end();
  await once(client, 'end');
  t.equal(Buffer.concat(back).length, payload.length, 'length');
  t.equal(sha(Buffer.concat(back)), sha(payload), 'sha256');
  if (!adoptedSock!.closed) await once(adoptedSock!, 'close');
  client.destroy();
  await new Promise<void>((r) => front.close(() => r()));
  t.pass('server.close() completes once the adopted socket closed (count handed over)');
});

t.test('reader chunks through a mux session: header written into the headroom (one socket write per frame), bytes exact', async (t) => {
  t.ok(HEADROOM >= HEADER_LENGTH, 'headroom fits a yamux header');
  const { client, server, cs } = await sessionPair(t);
  // Count the buffers the client session hands to its socket and how many are framed chunks.
  let framedWrites = 0;
  const origWrite = cs.write.bind(cs) as (b: Buffer) => boolean;
  (cs as unknown as { write: (b: Buffer) => boolean }).write = (b: Buffer) => {
    if (b.length > 64 * 1024 && b[0] === 0 && b[1] === FrameType.Data) framedWrites++;
    return origWrite(b);
  };
  const payload = randomBytes(8 * 1024 * 1024);
  // (Its socket may see a reset when the test tears the mux session down: splice aborts with RST.)
  const source = net.createServer((s) => {
    s.on('error', () => undefined);
    s.end(payload);
  });
  const port = await listen(source);
  t.teardown(() => source.close());
  const reader = new SocketReader();
  const sock = net.connect(withReader({ port, host: '127.0.0.1', allowHalfOpen: true }, reader));
  await once(sock, 'connect');
  const st = client.open();
  const accepted = (await once(server, 'stream')) as [Duplex];
  const got: Buffer[] = [];
  accepted[0].on('data', (d: Buffer) => got.push(d));
  splice(sock, st, undefined, undefined, { a: reader });
  accepted[0].resume();
  await once(accepted[0], 'end');
  accepted[0].end();
  t.equal(sha(Buffer.concat(got)), sha(payload), '8 MiB intact through reader -> mux');
  t.ok(framedWrites > 0, `large frames went out as one buffer with their header (${framedWrites})`);
  t.notOk(claimHeadroom(Buffer.alloc(10)), 'an ordinary buffer has no headroom');
});

t.test('releaseRead recycles full-size read buffers, and only those', async (t) => {
  const payload = randomBytes(4 * 1024 * 1024);
  const { reader, sock } = await readerOf(t, payload);
  const hashes = createHash('sha256');
  const seen = new Set<ArrayBufferLike>();
  let fullChunks = 0;
  reader.attach((c) => {
    hashes.update(c);
    if (c.length === MAX_READ) fullChunks++;
    seen.add(c.buffer);
    releaseRead(c); // consumed synchronously: safe to recycle at once
    return true;
  });
  sock.resume();
  await once(sock, 'end');
  t.equal(hashes.digest('hex'), sha(payload), 'bytes intact although buffers are reused');
  t.ok(fullChunks > 4, `several full reads (${fullChunks})`);
  t.ok(seen.size < fullChunks, `full-size buffers were reused (${seen.size} distinct for ${fullChunks} full reads)`);
  releaseRead(Buffer.alloc(100)); // not a reader buffer: ignored
  t.pass('a foreign buffer is ignored');
});

t.test('dispose() gives a socket\'s own buffer back to the pool', async (t) => {
  const { reader, sock } = await readerOf(t, randomBytes(1024 * 1024));
  reader.attach(() => true);
  sock.resume();
  await once(sock, 'end');
  t.ok(reader.ownsBuffer, 'a 1 MiB transfer moved the reader to a buffer of its own');
  sock.destroy();
  await once(sock, 'close');
  const before = pooledReadBuffers();
  reader.dispose();
  t.equal(pooledReadBuffers(), before + 1, 'its buffer is pooled again');
  t.notOk(reader.ownsBuffer);
});
