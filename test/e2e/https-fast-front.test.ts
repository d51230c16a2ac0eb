// The relay's fast front (relay/vhost/fast-front.ts) end to end, over real TLS to a real
// relay, agent and app: requests to a route without access rules are framed by the front
// (counted in /metrics), keep-alive and pipelined requests are answered in order with every
// body intact (lengths and sha256), each response framing the app may use reaches the client
// as valid HTTP/1.1, and a connection hands over to node:http at a request boundary when a
// request needs it (a route with access rules, a chunked body) — and then keeps working.
import t from 'tap';
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { rmSync } from 'node:fs';
import { TARGET_HOST, createServer, freePort, startAgent } from '../helpers/cluster.js';
import { caOf, httpsHostsOf, startWebRelay } from '../helpers/web.js';

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const BIG = crypto.randomBytes(1024 * 1024 + 7);

/** The app: fixed-length, chunked, bodiless and echo answers. */
async function app(): Promise<{ port: number; requests: number; connections: number; close(): Promise<void> }> {
  const state = { requests: 0, connections: 0 };
  const server = http.createServer((req, res) => {
    state.requests++;
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      switch (req.url) {
        case '/len':
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5', 'x-app': 'yes' }).end(req.method === 'HEAD' ? undefined : 'hello');
          return;
        case '/chunked':
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('part one, ');
          setTimeout(() => res.end('part two'), 20);
          return;
        case '/empty':
          res.writeHead(204).end();
          return;
        case '/big':
          res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(BIG);
          return;
        default:
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ url: req.url, method: req.method, bytes: body.length, sha: sha(body), xff: req.headers['x-forwarded-for'] ?? null, te: req.headers['transfer-encoding'] ?? null }));
      }
    });
  });
  server.on('connection', () => state.connections++);
  // Longer than the relay's pool idle time: streams close because the relay closes them, not the app.
  server.keepAliveTimeout = 30_000;
  const port = await freePort(TARGET_HOST);
  await new Promise<void>((r) => server.listen({ host: TARGET_HOST, port, exclusive: true }, r));
  return {
    port,
    get requests() {
      return state.requests;
    },
    get connections() {
      return state.connections;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** An app that answers HTTP/1.0-style: no length, the body ends when it closes its connection. */
async function closeDelimitedApp(): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((s) => {
    s.on('error', () => undefined);
    s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nuntil the end'));
  });
  const port = await freePort(TARGET_HOST);
  await new Promise<void>((r) => server.listen({ host: TARGET_HOST, port, exclusive: true }, r));
  return { port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const relay = await startWebRelay();
const plain = await app();
const guarded = await app();
const eof = await closeDelimitedApp();
const server = await createServer(relay, { id: 'gpu-f', owner: 'fx' });
const agent = await startAgent(relay, server.token, {
  yaml: ['mappings:', ...[plain.port, guarded.port, eof.port].map((p) => `  - { internal_port: ${p}, http: true }`)].join('\n'),
});
const { secure: plainHost } = await httpsHostsOf(agent, plain.port);
const { secure: guardedHost } = await httpsHostsOf(agent, guarded.port);
const { secure: eofHost } = await httpsHostsOf(agent, eof.port);
const view = await relay.api('GET', '/v1/servers/gpu-f/proxy');
const guardedId = (view.body.data.port_mappings as { id: string; internal_port: number }[]).find((m) => m.internal_port === guarded.port)!.id;
const put = await relay.api('PUT', `/v1/servers/gpu-f/proxy/ports/${guardedId}`, { access_control: { security_headers: { x_frame_options: 'DENY' } } });
if (put.status !== 200) throw new Error(`PUT access_control: ${put.status} ${JSON.stringify(put.body)}`);

t.teardown(async () => {
  await agent.stop();
  await relay.stop();
  await Promise.all([plain.close(), guarded.close(), eof.close()]);
  rmSync(relay.dataDir, { recursive: true, force: true });
});

async function frontCounters(): Promise<{ requests: number; direct: number; handovers: number; streams: number }> {
  const res = await fetch(`${relay.apiUrl}/metrics`, { headers: { authorization: `Bearer ${relay.adminKey}` } });
  const text = await res.text();
  const read = (name: string) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  return { requests: read('portico_https_fast_front_requests_total'), direct: read('portico_https_fast_front_direct_requests_total'), handovers: read('portico_https_fast_front_handovers_total'), streams: read('portico_streams_open') };
}

/** Polls until the relay has no stream to the agent open (idle pooled streams close after 4 s; bounded at 10 s). */
async function streamsBackToZero(): Promise<number> {
  let open = NaN;
  for (let i = 0; i < 100; i++) {
    open = (await frontCounters()).streams;
    if (open === 0) return 0;
    await new Promise((r) => setTimeout(r, 100));
  }
  return open;
}

interface Parsed {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * One TLS connection: writes `requests` (all at once when `pipelined`, else each after the
 * previous answer) and parses the answers with a strict HTTP/1.1 reader (Content-Length or
 * chunked; HEAD and 204 bodiless), so a framing error fails the test.
 */
async function conversation(
  host: string,
  requests: Array<{ text: string | Buffer; head?: boolean }>,
  pipelined = false,
  expectClose = false,
): Promise<{ answers: Parsed[]; closed: boolean }> {
  const sock = tls.connect({ host: '127.0.0.1', port: relay.ports.https, servername: host, ca: caOf(relay) });
  sock.on('error', () => undefined);
  let buf = Buffer.alloc(0);
  let closed = false;
  let wake: (() => void) | null = null;
  sock.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    wake?.();
  });
  sock.on('close', () => {
    closed = true;
    wake?.();
  });
  const more = () =>
    new Promise<void>((r, reject) => {
      if (closed) return reject(new Error(`connection closed; unread: ${JSON.stringify(buf.toString('latin1').slice(0, 200))}`));
      const timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5_000);
      wake = () => {
        clearTimeout(timer);
        wake = null;
        r();
      };
    });
  const take = async (n: number): Promise<Buffer> => {
    while (buf.length < n) await more();
    const out = buf.subarray(0, n);
    buf = buf.subarray(n);
    return out;
  };
  const line = async (): Promise<string> => {
    for (;;) {
      const i = buf.indexOf('\r\n');
      if (i >= 0) return (await take(i + 2)).toString('latin1', 0, i);
      await more();
    }
  };
  const read = async (bodiless: boolean): Promise<Parsed> => {
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(await line())?.[1]);
    const headers: Record<string, string> = {};
    for (let l = await line(); l !== ''; l = await line()) {
      const m = /^([^:]+): (.*)$/.exec(l);
      if (!m) throw new Error(`bad header line ${JSON.stringify(l)}`);
      headers[m[1]!.toLowerCase()] = m[2]!;
    }
    if (bodiless || status === 204 || status === 304) return { status, headers, body: Buffer.alloc(0) };
    if (headers['content-length'] !== undefined) return { status, headers, body: await take(Number(headers['content-length'])) };
    if (headers['transfer-encoding'] !== 'chunked') throw new Error(`unframed response: ${JSON.stringify(headers)}`);
    const parts: Buffer[] = [];
    for (;;) {
      const size = parseInt(await line(), 16);
      if (size === 0) {
        if ((await line()) !== '') throw new Error('trailers not expected');
        return { status, headers, body: Buffer.concat(parts) };
      }
      parts.push(await take(size));
      if ((await line()) !== '') throw new Error('chunk not followed by CRLF');
    }
  };
  await new Promise<void>((r) => sock.once('secureConnect', () => r()));
  const answers: Parsed[] = [];
  if (pipelined) sock.write(Buffer.concat(requests.map((q) => Buffer.from(q.text))));
  for (const q of requests) {
    if (!pipelined) sock.write(q.text);
    answers.push(await read(q.head === true));
  }
  // A close the relay is to make after the last answer: wait for it (bounded), not for a fixed time.
  if (expectClose && !closed) {
    await new Promise<void>((r) => {
      const timer = setTimeout(r, 5_000);
      sock.once('close', () => {
        clearTimeout(timer);
        r();
      });
    });
  }
  sock.destroy();
  return { answers, closed };
}

const get = (host: string, path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`;

t.test('keep-alive through the fast front: fixed-length, chunked, HEAD, 204, close-delimited, 1 MiB both ways', async (t) => {
  const before = await frontCounters();
  const post = Buffer.concat([Buffer.from(`POST /echo HTTP/1.1\r\nHost: ${plainHost}\r\nContent-Length: ${BIG.length}\r\n\r\n`), BIG]);
  const { answers } = await conversation(plainHost, [
    { text: get(plainHost, '/len') },
    { text: get(plainHost, '/chunked') },
    { text: `HEAD /len HTTP/1.1\r\nHost: ${plainHost}\r\n\r\n`, head: true },
    { text: get(plainHost, '/empty') },
    { text: post },
    { text: get(plainHost, '/big') },
    { text: get(plainHost, '/who') },
  ]);
  const [len, chunked, head, empty, echo, big, who] = answers;
  t.equal(len!.status, 200);
  t.equal(len!.body.toString(), 'hello');
  t.equal(len!.headers['x-app'], 'yes', "the app's headers pass");
  t.equal(len!.headers.connection, 'keep-alive');
  t.ok(len!.headers.date, 'a Date header, as node:http sends');
  t.equal(chunked!.body.toString(), 'part one, part two', 'a chunked answer arrives whole, re-chunked');
  t.equal(head!.headers['content-length'], '5', "HEAD: the app's length, no body");
  t.equal(empty!.status, 204);
  const e = JSON.parse(echo!.body.toString());
  t.equal(e.bytes, BIG.length, 'request body length');
  t.equal(e.sha, sha(BIG), 'request body sha256');
  t.equal(e.xff, '127.0.0.1', 'X-Forwarded-For is the real peer');
  t.equal(big!.body.length, BIG.length, 'response body length');
  t.equal(sha(big!.body), sha(BIG), 'response body sha256');
  t.equal(JSON.parse(who!.body.toString()).url, '/who', 'and the connection still serves');
  const after = await frontCounters();
  t.equal(after.requests - before.requests, 7, 'all seven were framed by the fast front');
  t.equal(after.handovers, before.handovers, 'none handed over');

  const eofAnswer = await conversation(eofHost, [{ text: get(eofHost, '/') }, { text: get(eofHost, '/again') }]);
  t.same(
    eofAnswer.answers.map((a) => a.body.toString()),
    ['until the end', 'until the end'],
    'a body that ends with the app\'s connection reaches the client chunked, and the client connection stays open',
  );
});

t.test('pipelined requests are answered in order; Connection: close ends the connection after its answer', async (t) => {
  const { answers, closed } = await conversation(
    plainHost,
    [{ text: get(plainHost, '/one') }, { text: get(plainHost, '/two') }, { text: get(plainHost, '/three', 'Connection: close\r\n') }],
    true,
    true,
  );
  t.same(
    answers.map((a) => JSON.parse(a.body.toString()).url),
    ['/one', '/two', '/three'],
  );
  t.equal(answers[2]!.headers.connection, 'close');
  t.ok(closed, 'the relay closed the connection after the last answer');
});

t.test('hand-over to node:http at a request boundary: a route with access rules, a chunked body', async (t) => {
  const before = await frontCounters();
  const chunkedPost = `POST /up HTTP/1.1\r\nHost: ${plainHost}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`;
  const { answers } = await conversation(plainHost, [
    { text: get(plainHost, '/fast') },
    { text: get(guardedHost, '/guarded') },
    { text: get(plainHost, '/after') },
    { text: chunkedPost },
  ]);
  t.equal(JSON.parse(answers[0]!.body.toString()).url, '/fast');
  t.equal(answers[1]!.headers['x-frame-options'], 'DENY', 'the guarded route got its access features (node:http path)');
  t.equal(JSON.parse(answers[2]!.body.toString()).url, '/after', 'the connection goes on after the hand-over');
  const up = JSON.parse(answers[3]!.body.toString());
  t.equal(up.bytes, 5, 'the chunked body arrived');
  t.equal(up.sha, sha(Buffer.from('hello')));
  const after = await frontCounters();
  t.equal(after.requests - before.requests, 1, 'the front framed the first request only');
  t.equal(after.handovers - before.handovers, 1, 'and handed the connection over once');

  const fresh = await conversation(plainHost, [{ text: chunkedPost }]);
  t.equal(JSON.parse(fresh.answers[0]!.body.toString()).bytes, 5, 'a chunked body as the first request is handed over too');
});

t.test('a client that leaves mid-response or mid-body costs nothing: no stream left open, the next requests are served', async (t) => {
  const open = async () => {
    const sock = tls.connect({ host: '127.0.0.1', port: relay.ports.https, servername: plainHost, ca: caOf(relay) });
    sock.on('error', () => undefined);
    await new Promise<void>((r) => sock.once('secureConnect', () => r()));
    return sock;
  };
  const a = await open();
  a.write(get(plainHost, '/big'));
  await new Promise<void>((r) => a.once('data', () => r()));
  a.destroy();
  const b = await open();
  // Half of a declared 1 MiB body, then gone.
  b.write(Buffer.concat([Buffer.from(`POST /echo HTTP/1.1\r\nHost: ${plainHost}\r\nContent-Length: ${BIG.length}\r\n\r\n`), BIG.subarray(0, BIG.length >> 1)]));
  await new Promise((r) => setTimeout(r, 200));
  b.destroy();
  t.equal(await streamsBackToZero(), 0, 'every stream to the agent closed (pooled ones stay only when idle and whole)');
  const { answers } = await conversation(plainHost, [{ text: get(plainHost, '/len') }]);
  t.equal(answers[0]!.body.toString(), 'hello');
});

t.test('a keep-alive connection keeps its stream to the app between requests, across hosts, and gives it back when it closes', async (t) => {
  t.equal(await streamsBackToZero(), 0, 'no stream open at the start');
  const before = plain.connections;
  const counted = await frontCounters();
  const body = crypto.randomBytes(3000);
  const post = Buffer.concat([Buffer.from(`POST /echo HTTP/1.1\r\nHost: ${plainHost}\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
  const requests = [];
  for (let i = 0; i < 10; i++) requests.push({ text: get(plainHost, '/len') }, { text: post }, { text: get(eofHost, '/') });
  const { answers } = await conversation(plainHost, requests);
  for (let i = 0; i < 10; i++) {
    t.equal(answers[i * 3]!.body.toString(), 'hello');
    t.equal((JSON.parse(answers[i * 3 + 1]!.body.toString()) as { sha: string }).sha, sha(body), 'the POST body arrived whole');
    t.equal(answers[i * 3 + 2]!.body.toString(), 'until the end', 'the other host between them (its stream closes after each answer)');
  }
  t.equal(plain.connections - before, 1, 'one stream to the app carried the 20 requests to its host');
  t.equal((await frontCounters()).direct - counted.direct, 30, 'all 30 took the direct path');
  // The closed client connection's stream went back to the pool: the next connection reuses it.
  const again = await conversation(plainHost, [{ text: get(plainHost, '/len') }]);
  t.equal(again.answers[0]!.body.toString(), 'hello');
  t.equal(plain.connections - before, 1, 'the stream a closed connection held went back to the pool and was reused');
  t.equal(await streamsBackToZero(), 0, 'idle streams close after the pool idle time');
});

t.test('a stream a keep-alive connection keeps is closed after the pool idle time; the connection then gets a fresh one', async (t) => {
  t.equal(await streamsBackToZero(), 0, 'no stream open at the start');
  const sock = tls.connect({ host: '127.0.0.1', port: relay.ports.https, servername: plainHost, ca: caOf(relay) });
  sock.on('error', () => undefined);
  t.teardown(() => sock.destroy());
  await new Promise<void>((r) => sock.once('secureConnect', () => r()));
  let got = '';
  sock.on('data', (c: Buffer) => (got += c.toString('latin1')));
  const answered = async (n: number) => {
    for (let i = 0; i < 100 && got.split('\r\n\r\nhello').length - 1 < n; i++) await new Promise((r) => setTimeout(r, 50));
    return got.split('\r\n\r\nhello').length - 1;
  };
  const before = plain.connections;
  sock.write(get(plainHost, '/len'));
  t.equal(await answered(1), 1, 'first answer');
  t.equal((await frontCounters()).streams, 1, 'the connection keeps its stream while it is idle');
  t.equal(await streamsBackToZero(), 0, 'the parked stream closed after the idle time, the client connection still open');
  t.notOk(sock.destroyed, 'the client connection is still open');
  sock.write(get(plainHost, '/len'));
  t.equal(await answered(2), 2, 'the next request on the same connection is answered');
  t.equal(plain.connections - before, 2, 'on a fresh stream');
});

t.test('draining (SIGTERM): an idle keep-alive connection closes at once, an answer in flight completes with Connection: close', async (t) => {
  // A relay of its own: this one is stopped.
  const slow = http.createServer((req, res) => {
    setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '4' }).end('done'), req.url === '/slow' ? 1_000 : 0);
  });
  const slowPort = await freePort(TARGET_HOST);
  await new Promise<void>((r) => slow.listen({ host: TARGET_HOST, port: slowPort, exclusive: true }, r));
  const r2 = await startWebRelay({ logLevel: 'warn' });
  const s2 = await createServer(r2, { id: 'gpu-d', owner: 'dx' });
  const a2 = await startAgent(r2, s2.token, { yaml: `mappings:\n  - { internal_port: ${slowPort}, http: true }` });
  const { secure: host } = await httpsHostsOf(a2, slowPort);
  t.teardown(async () => {
    await a2.stop();
    await r2.stop('SIGKILL').catch(() => undefined);
    slow.closeAllConnections();
    slow.close();
    rmSync(r2.dataDir, { recursive: true, force: true });
  });
  const connect = async () => {
    const sock = tls.connect({ host: '127.0.0.1', port: r2.ports.https, servername: host, ca: caOf(r2) });
    sock.on('error', () => undefined);
    let text = '';
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (text += d));
    const closed = new Promise<number>((r) => sock.once('close', () => r(performance.now())));
    await new Promise<void>((r) => sock.once('secureConnect', () => r()));
    return { sock, closed, text: () => text };
  };
  const idle = await connect();
  idle.sock.write(get(host, '/quick'));
  await new Promise<void>((r) => {
    const timer = setTimeout(r, 5_000);
    const check = () => {
      if (!idle.text().endsWith('done')) return;
      clearTimeout(timer);
      idle.sock.off('data', check);
      r();
    };
    idle.sock.on('data', check);
  });
  t.match(idle.text(), /^HTTP\/1\.1 200 [\s\S]*done$/, 'the idle connection served a request first');
  const busy = await connect();
  busy.sock.write(get(host, '/slow'));
  await new Promise((r) => setTimeout(r, 200));
  const stopped = r2.stop('SIGTERM');
  const idleClosedAt = await idle.closed;
  const busyClosedAt = await busy.closed;
  t.ok(idleClosedAt < busyClosedAt, 'the idle connection was closed first, without waiting for the answer in flight');
  t.match(busy.text(), /^HTTP\/1\.1 200 [^]*\r\n\r\ndone$/, 'the answer in flight arrived whole');
  t.match(busy.text(), /\r\nConnection: close\r\n/, 'marked as the last on its connection');
  t.equal(await stopped, 0, 'the relay exited 0');
});
