// Interop: our yamux (shared/mux) against @chainsafe/libp2p-yamux over a real
// loopback TCP socket. libp2p's muxer wants a libp2p MessageStream, so a small
// adapter (SocketMaConn, below, test-only) turns a net.Socket into one.
//
// Behaviours of that library this suite accounts for (not bugs of ours):
// - It answers a *Normal* GoAway by closing its whole muxer at once
//   (onTransportClosed): its open streams end right away instead of finishing.
//   So "existing streams continue after GoAway" can only be tested between two
//   Portico sessions (test/unit/mux-session.test.ts); here we check that no new
//   streams open in either direction and that the GoAway code arrives.
// - Its close() sends its GoAway only after all its streams closed, so we see
//   the 'goaway' event at the end of its close.
// - It credits window as data arrives (not as the app reads it) unless the
//   stream is paused; stream.pause() is how it stops granting window, which is
//   what the window-exhaustion case uses.
import t, { type Test } from 'tap';
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { yamux } from '@chainsafe/libp2p-yamux';
import { AbstractMultiaddrConnection, type SendResult } from '@libp2p/utils';
import { defaultLogger } from '@libp2p/logger';
import { multiaddr } from '@multiformats/multiaddr';
import type { Stream, StreamMuxer } from '@libp2p/interface';

// libp2p's stream code calls Promise.withResolvers (Node >= 22); Portico runs on Node 20.
const P = Promise as unknown as { withResolvers?: () => unknown };
if (typeof P.withResolvers !== 'function') {
  P.withResolvers = function withResolvers<T>() {
    let resolve!: (v: T) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

type SendList = Parameters<AbstractMultiaddrConnection['sendData']>[0];
import { GoAwayCode, Session, type MuxStream, type SessionOptions } from '../../shared/mux/index.js';
import { socketPair } from '../helpers/socket-pair.js';

/** net.Socket -> libp2p MultiaddrConnection (the shape libp2p's muxers consume). */
class SocketMaConn extends AbstractMultiaddrConnection {
  private readonly socket: net.Socket;
  constructor(socket: net.Socket, direction: 'inbound' | 'outbound') {
    super({
      remoteAddr: multiaddr(`/ip4/127.0.0.1/tcp/${socket.remotePort ?? 0}`),
      direction,
      log: defaultLogger().forComponent(`portico:interop:${direction}`),
    });
    this.socket = socket;
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('end', () => this.onRemoteCloseWrite());
    socket.on('close', () => this.onTransportClosed());
    socket.on('error', (err) => this.abort(err));
    socket.on('drain', () => this.safeDispatchEvent('drain'));
  }
  sendData(data: SendList): SendResult {
    let ok = true;
    for (const buf of data) ok = this.socket.write(buf);
    return { sentBytes: data.byteLength, canSendMore: ok };
  }
  sendReset(): void {
    this.socket.resetAndDestroy();
  }
  async sendClose(): Promise<void> {
    this.socket.end();
  }
  sendPause(): void {
    this.socket.pause();
  }
  sendResume(): void {
    this.socket.resume();
  }
}


interface Pair {
  ours: Session;
  theirs: StreamMuxer;
  theirStreams: Their[];
}

/** ours is the yamux client when weAreClient, else the server; libp2p takes the other role. */
async function pair(tt: Test, weAreClient: boolean, opts: Partial<SessionOptions> = {}, onTheirStream?: (th: Their) => void): Promise<Pair> {
  const [a, b] = await socketPair(tt);
  const ours = new Session(weAreClient ? a : b, { isClient: weAreClient, ...opts });
  const conn = new SocketMaConn(weAreClient ? b : a, weAreClient ? 'inbound' : 'outbound');
  const theirs = yamux({ enableKeepAlive: false })().createStreamMuxer(conn);
  const theirStreams: Their[] = [];
  theirs.addEventListener('stream', (evt) => {
    const th = track(evt.detail);
    theirStreams.push(th);
    onTheirStream?.(th);
  });
  tt.teardown(() => {
    ours.destroy();
    theirs.abort(new Error('test over'));
  });
  return { ours, theirs, theirStreams };
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(5);
  }
}

/**
 * A libp2p stream with its incoming data collected from the moment it exists:
 * its 'end' fires once and an async iterator attached later would miss it.
 */
interface Their {
  stream: Stream;
  chunks: Buffer[];
  ended: Promise<void>;
}

function track(stream: Stream): Their {
  const chunks: Buffer[] = [];
  stream.addEventListener('message', (evt) => chunks.push(Buffer.from(evt.data.subarray())));
  const ended = new Promise<void>((resolve) => {
    stream.addEventListener('end', () => resolve());
    stream.addEventListener('close', () => resolve());
  });
  return { stream, chunks, ended };
}

/** Everything a libp2p stream received, once the remote half-closed it. */
async function theirRead(th: Their): Promise<Buffer> {
  await th.ended;
  return Buffer.concat(th.chunks);
}

/** Writes to a libp2p stream honouring its backpressure, then half-closes it. */
async function theirWrite(s: Stream, data: Buffer, chunk = 64 * 1024): Promise<void> {
  for (let off = 0; off < data.length; off += chunk) {
    if (!s.send(data.subarray(off, off + chunk))) await s.onDrain();
  }
  await s.close();
}

function ourRead(s: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.once('end', () => resolve(Buffer.concat(parts)));
    s.once('error', reject);
  });
}

async function ourWrite(s: Duplex, data: Buffer, chunk = 64 * 1024): Promise<void> {
  for (let off = 0; off < data.length; off += chunk) {
    if (!s.write(data.subarray(off, off + chunk))) await once(s, 'drain');
  }
  s.end();
}

const closedStream = (s: Duplex): Promise<void> => (s.closed ? Promise.resolve() : once(s, 'close').then(() => undefined));

t.test('we open, they accept: 3 MiB each way, sha256 equal', async (t) => {
  const p = await pair(t, true);
  const up = randomBytes(3 * 1024 * 1024);
  const down = randomBytes(3 * 1024 * 1024);
  const s = p.ours.open();
  const ourGot = ourRead(s);
  const writing = ourWrite(s, up);
  await until(() => p.theirStreams.length === 1);
  const their = p.theirStreams[0]!;
  const [theirGot] = await Promise.all([theirRead(their), theirWrite(their.stream, down), writing]);
  t.equal(sha(theirGot), sha(up), 'ours -> libp2p intact');
  t.equal(sha(await ourGot), sha(down), 'libp2p -> ours intact');
  await closedStream(s);
  t.equal(p.ours.streamCount, 0);
});

t.test('they open, we accept: 3 MiB each way, sha256 equal', async (t) => {
  const p = await pair(t, false);
  const up = randomBytes(3 * 1024 * 1024);
  const down = randomBytes(3 * 1024 * 1024);
  const accepted = once(p.ours, 'stream') as Promise<[MuxStream]>;
  const their = track(await p.theirs.createStream());
  const theirGot = theirRead(their);
  const theirWriting = theirWrite(their.stream, up);
  const [s] = await accepted;
  t.equal(s.id % 2, 1, 'libp2p as client opened an odd id');
  const [ourGot] = await Promise.all([ourRead(s), ourWrite(s, down), theirWriting]);
  t.equal(sha(ourGot), sha(up), 'libp2p -> ours intact');
  t.equal(sha(await theirGot), sha(down), 'ours -> libp2p intact');
  await closedStream(s);
  t.equal(p.ours.streamCount, 0);
});

t.test('50 concurrent streams echoed by libp2p', async (t) => {
  // libp2p echoes every stream we open.
  const p = await pair(t, true, {}, (th) => void theirRead(th).then((d) => theirWrite(th.stream, d)));
  const results = await Promise.all(
    Array.from({ length: 50 }, async () => {
      const data = randomBytes(200 * 1024);
      const s = p.ours.open();
      const back = ourRead(s);
      await ourWrite(s, data);
      return (await back).equals(data);
    }),
  );
  t.equal(results.filter(Boolean).length, 50, '50 echoes of 200 KiB intact');
  await until(() => p.ours.streamCount === 0);
});

t.test('half-close: we end, they still reply, both see a clean end', async (t) => {
  const p = await pair(t, true);
  const s = p.ours.open();
  const reply = ourRead(s);
  s.end('request');
  await until(() => p.theirStreams.length === 1);
  const their = p.theirStreams[0]!;
  t.equal((await theirRead(their)).toString(), 'request', 'libp2p read our data and our FIN');
  t.equal(p.ours.streamCount, 1, 'half-closed stream still open on our side');
  await theirWrite(their.stream, Buffer.from('reply'));
  t.equal((await reply).toString(), 'reply', 'we read their reply and their FIN');
  await closedStream(s);
  t.equal(s.errored, null, 'no error on our side');
  await until(() => their.stream.status === 'closed');
  t.equal(p.ours.streamCount, 0);

  // And the other way: they half-close first.
  const p2 = await pair(t, false);
  const acc2 = once(p2.ours, 'stream') as Promise<[MuxStream]>;
  const their2 = track(await p2.theirs.createStream());
  const back = theirRead(their2);
  await theirWrite(their2.stream, Buffer.from('question'));
  const [s2] = await acc2;
  t.equal((await ourRead(s2)).toString(), 'question');
  s2.end('answer');
  t.equal((await back).toString(), 'answer');
  await closedStream(s2);
  t.equal(p2.ours.streamCount, 0);
});

t.test('window exhaustion: our sender waits for libp2p window updates', async (t) => {
  const p = await pair(t, true);
  const data = randomBytes(2 * 1024 * 1024);
  const s = p.ours.open();
  s.write(data.subarray(0, 1)); // open the stream so libp2p sees it
  await until(() => p.theirStreams.length === 1);
  const their = p.theirStreams[0]!;
  their.stream.pause(); // libp2p stops granting window while paused
  let done = false;
  const writing = ourWrite(s, data.subarray(1)).then(() => (done = true));
  await sleep(200);
  t.notOk(done, 'sender stalled');
  t.equal(s._sendWindow, 0, 'our send window is exhausted');
  // 256 KiB initial window + the 1 byte it credited back before the pause.
  t.ok(their.stream.readBufferLength <= 256 * 1024 + 1, `libp2p holds at most its window (${their.stream.readBufferLength})`);
  their.stream.resume();
  const got = await theirRead(their);
  await writing;
  t.equal(sha(got), sha(data), '2 MiB intact once window updates flow');
  s.resume();
  await theirWrite(their.stream, Buffer.alloc(0));
  await closedStream(s);
});

t.test('window exhaustion: libp2p waits for our window updates; we buffer at most one window', async (t) => {
  const win = 1024 * 1024;
  const p = await pair(t, true, { maxStreamWindow: win });
  const s = p.ours.open();
  s.write('x');
  await until(() => p.theirStreams.length === 1);
  const their = p.theirStreams[0]!;
  const data = randomBytes(6 * 1024 * 1024);
  let done = false;
  const theirWriting = theirWrite(their.stream, data).then(() => (done = true));
  await sleep(300);
  t.notOk(done, 'libp2p sender stalled while we do not read');
  t.ok(s.readableLength <= win, `we buffer at most one window (${s.readableLength} <= ${win})`);
  t.ok(s.readableLength >= win / 2, 'and it was filled');
  const got = await ourRead(s);
  await theirWriting;
  t.equal(sha(got), sha(data), '6 MiB intact once we read');
  s.end();
  await theirRead(their);
  await closedStream(s);
  t.equal(p.ours.streamCount, 0);
});

t.test('RST both ways', async (t) => {
  const p = await pair(t, true);
  const s = p.ours.open();
  s.write('x');
  await until(() => p.theirStreams.length === 1);
  const their = p.theirStreams[0]!;
  const ourErr = once(s, 'error') as Promise<[NodeJS.ErrnoException]>;
  their.stream.abort(new Error('they reset'));
  t.equal((await ourErr)[0].code, 'ECONNRESET', 'their RST destroys our stream with ECONNRESET');

  const s2 = p.ours.open();
  s2.write('y');
  await until(() => p.theirStreams.length === 2);
  const their2 = p.theirStreams[1]!;
  const closed = new Promise<Event & { error?: Error }>((resolve) => their2.stream.addEventListener('close', (e) => resolve(e as Event & { error?: Error })));
  s2.destroy();
  const ev = await closed;
  t.equal(their2.stream.status, 'reset', 'our RST resets their stream');
  t.ok(ev.error, 'with an error');
  await until(() => p.ours.streamCount === 0);
  t.ok((await p.ours.ping()) >= 0, 'session alive; ping answered by libp2p');
});

t.test('GoAway from us: libp2p can open no new stream and sees the session end', async (t) => {
  const p = await pair(t, true);
  p.ours.goAway();
  await until(() => p.theirs.status !== 'open');
  await t.rejects(p.theirs.createStream(), 'libp2p cannot open after our GoAway');
  t.throws(() => p.ours.open(), { code: 'SHUTTING_DOWN' }, 'nor can we');
});

t.test('GoAway from libp2p (close): we get the code and open no new stream', async (t) => {
  const p = await pair(t, false);
  const goaway = once(p.ours, 'goaway') as Promise<[number]>;
  await p.theirs.close();
  const [code] = await goaway;
  t.equal(code, GoAwayCode.Normal);
  t.throws(() => p.ours.open(), { code: 'SHUTTING_DOWN' });
  t.notOk(p.ours.closed, 'a Normal GoAway does not kill the session by itself');
});

t.test('ping: libp2p answers ours, we answer theirs', async (t) => {
  const p = await pair(t, true);
  const rtt = await p.ours.ping();
  t.ok(rtt >= 0 && rtt < 1000, `our ping rtt ${rtt.toFixed(2)} ms`);
  const theirRtt = await (p.theirs as unknown as { ping(): Promise<number> }).ping();
  t.ok(theirRtt >= 0 && theirRtt < 1000, `their ping rtt ${theirRtt} ms`);
});
