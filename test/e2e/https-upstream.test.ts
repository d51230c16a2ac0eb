// The web proxy's own HTTP/1.1 client (relay/vhost/exchange.ts,
// response-parser.ts, upstream-pool.ts) against a raw TCP app that sends
// exactly the bytes each case needs: chunked bodies with extensions and
// trailers, close-delimited bodies, Connection: close, HTTP/1.0, interim
// 1xx, HEAD, 204, malformed and oversized heads, an app hanging up, a pooled
// stream closed under a request (retried once when idempotent), request
// bodies re-chunked, stream reuse.
import t from 'tap';
import net from 'node:net';
import https from 'node:https';
import { rmSync } from 'node:fs';
import { TARGET_HOST, createServer, startAgent } from '../helpers/cluster.js';
import { caOf, httpsHostsOf, startWebRelay, webRequest } from '../helpers/web.js';

interface RawRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
}

/** Reads requests off a socket (Content-Length or chunked bodies) and hands each to `on`. */
function serveRaw(sock: net.Socket, on: (req: RawRequest, nth: number) => void): void {
  let buf = Buffer.alloc(0);
  let nth = 0;
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
      const [method, path] = lines[0]!.split(' ') as [string, string];
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const c = l.indexOf(':');
        headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
      }
      let rest = buf.subarray(end + 4);
      let body = Buffer.alloc(0);
      if (headers['transfer-encoding'] === 'chunked') {
        const parts: Buffer[] = [];
        let off = 0;
        let complete = false;
        for (;;) {
          const lf = rest.indexOf('\r\n', off);
          if (lf < 0) break;
          const size = parseInt(rest.subarray(off, lf).toString(), 16);
          if (size === 0) {
            if (rest.length >= lf + 4) {
              off = lf + 4;
              complete = true;
            }
            break;
          }
          if (rest.length < lf + 2 + size + 2) break;
          parts.push(rest.subarray(lf + 2, lf + 2 + size));
          off = lf + 2 + size + 2;
        }
        if (!complete) return;
        body = Buffer.concat(parts);
        rest = rest.subarray(off);
      } else {
        const n = Number(headers['content-length'] ?? 0);
        if (rest.length < n) return;
        body = rest.subarray(0, n);
        rest = rest.subarray(n);
      }
      buf = Buffer.from(rest);
      on({ method, path, headers, body }, nth++);
    }
  });
}

let connections = 0;
const app = net.createServer((sock) => {
  connections++;
  sock.on('error', () => undefined);
  serveRaw(sock, (req, nth) => {
    const send = (s: string | Buffer) => sock.write(s);
    switch (req.path) {
      case '/chunked':
        send('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n');
        return;
      case '/close-delimited':
        send('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ');
        setTimeout(() => sock.end('close'), 20);
        return;
      case '/conn-close':
        sock.end('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok');
        return;
      case '/http10':
        sock.end('HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\n1.0!');
        return;
      case '/early':
        send('HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n');
        setTimeout(() => send('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal'), 20);
        return;
      case '/no-content':
        send('HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n');
        return;
      case '/head':
        // HEAD: a length, no body; the stream stays usable.
        send(`HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nX-Method: ${req.method}\r\n\r\n`);
        if (req.method !== 'HEAD') send(Buffer.alloc(1000, 0x61));
        return;
      case '/garbage':
        send('SPDY/3 OK\r\n\r\n');
        return;
      case '/control-char':
        send('HTTP/1.1 200 OK\r\nX-Bad: a\x01b\r\nContent-Length: 2\r\n\r\nok');
        return;
      case '/huge-head':
        send(`HTTP/1.1 200 OK\r\nX-Huge: ${'h'.repeat(70 * 1024)}\r\nContent-Length: 0\r\n\r\n`);
        return;
      case '/hangup':
        sock.destroy();
        return;
      case '/second-hangs-up':
        // The first request on a connection is answered; a later one finds the app gone (a keep-alive race).
        if (nth > 0) sock.destroy();
        else send('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst');
        return;
      case '/body': {
        const info = JSON.stringify({ len: req.body.length, te: req.headers['transfer-encoding'] ?? null, cl: req.headers['content-length'] ?? null, sum: req.body.reduce((a, b) => a + b, 0) });
        send(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${info.length}\r\n\r\n${info}`);
        return;
      }
      default:
        send(`HTTP/1.1 200 OK\r\nContent-Length: ${req.path.length}\r\n\r\n${req.path}`);
    }
  });
});
await new Promise<void>((r) => app.listen(0, TARGET_HOST, r));
const appPort = (app.address() as net.AddressInfo).port;

const relay = await startWebRelay();
const server = await createServer(relay, { id: 'raw-app' });
const agent = await startAgent(relay, server.token, { yaml: `mappings:\n  - { internal_port: ${appPort}, http: true }` });
const { secure: host } = await httpsHostsOf(agent, appPort);
const json = { accept: 'application/json' };

t.teardown(async () => {
  await agent.stop();
  await relay.stop();
  app.close();
  rmSync(relay.dataDir, { recursive: true, force: true });
});

t.test('response framings reach the client whole', async (t) => {
  const chunked = await webRequest(relay, host, { path: '/chunked' });
  t.equal(chunked.status, 200);
  t.equal(chunked.body.toString(), 'hello world', 'chunked body decoded (extensions, trailers dropped)');
  const closeDelimited = await webRequest(relay, host, { path: '/close-delimited' });
  t.equal(closeDelimited.body.toString(), 'until close', 'body until the app closes');
  t.equal((await webRequest(relay, host, { path: '/conn-close' })).body.toString(), 'ok');
  t.equal((await webRequest(relay, host, { path: '/http10' })).body.toString(), '1.0!');
  const early = await webRequest(relay, host, { path: '/early' });
  t.equal(early.status, 200, 'interim 103 skipped');
  t.equal(early.body.toString(), 'final');
  const none = await webRequest(relay, host, { path: '/no-content' });
  t.equal(none.status, 204);
  t.equal(none.headers['x-a'], 'b');
});

t.test('HEAD keeps the stream in step; streams are reused', async (t) => {
  const ka = new https.Agent({ keepAlive: true, maxSockets: 1, ca: caOf(relay) });
  t.teardown(() => ka.destroy());
  const before = connections;
  const head = await webRequest(relay, host, { method: 'HEAD', path: '/head', agent: ka });
  t.equal(head.status, 200);
  t.equal(head.headers['content-length'], '1000', 'the length of the body a GET would get');
  t.equal(head.body.length, 0);
  const get = await webRequest(relay, host, { path: '/head', agent: ka });
  t.equal(get.body.length, 1000, 'a GET after the HEAD gets its whole body');
  for (let i = 0; i < 20; i++) t.equal((await webRequest(relay, host, { path: `/n${i}`, agent: ka })).body.toString(), `/n${i}`);
  t.ok(connections - before <= 2, `22 requests took ${connections - before} app connections`);
});

t.test('malformed, oversized and missing answers are 502s that say why', async (t) => {
  const garbage = await webRequest(relay, host, { path: '/garbage', headers: json });
  t.equal(garbage.status, 502);
  t.match(JSON.parse(garbage.body.toString()).error.message, /sent an invalid HTTP response \(HPE_/);
  const control = await webRequest(relay, host, { path: '/control-char', headers: json });
  t.equal(control.status, 502, 'a control character in a header value');
  t.match(JSON.parse(control.body.toString()).error.message, /sent an invalid HTTP response \(HPE_INVALID_HEADER_TOKEN\)/);
  const huge = await webRequest(relay, host, { path: '/huge-head', headers: json });
  t.equal(huge.status, 502);
  t.match(JSON.parse(huge.body.toString()).error.message, /HPE_HEADER_OVERFLOW/);
  const hangup = await webRequest(relay, host, { path: '/hangup', headers: json });
  t.equal(hangup.status, 502);
  t.match(JSON.parse(hangup.body.toString()).error.message, /closed the connection without answering/);
  t.equal((await webRequest(relay, host, { path: '/fine' })).status, 200, 'and the next request is fine');
});

t.test('a pooled stream closed under a request: GET is retried once, POST is not', async (t) => {
  const ka = new https.Agent({ keepAlive: true, maxSockets: 1, ca: caOf(relay) });
  t.teardown(() => ka.destroy());
  t.equal((await webRequest(relay, host, { path: '/second-hangs-up', agent: ka })).body.toString(), 'first');
  const again = await webRequest(relay, host, { path: '/second-hangs-up', agent: ka });
  t.equal(again.status, 200, 'the GET went again on a fresh stream');
  t.equal(again.body.toString(), 'first');
  const post = await webRequest(relay, host, { method: 'POST', path: '/second-hangs-up', agent: ka, headers: json });
  t.equal(post.status, 502, 'a POST is never sent twice');
});

t.test('request bodies: lengths kept, chunked re-chunked, a bodiless POST says Content-Length: 0', async (t) => {
  const fixed = JSON.parse((await webRequest(relay, host, { method: 'POST', path: '/body', body: Buffer.alloc(70_000, 1) })).body.toString());
  t.same(fixed, { len: 70_000, te: null, cl: '70000', sum: 70_000 });
  const chunked = await new Promise<string>((resolve, reject) => {
    const r = https.request({ host: '127.0.0.1', port: relay.ports.https, servername: host, path: '/body', method: 'PUT', headers: { host }, ca: caOf(relay), agent: false }, (res) => {
      let s = '';
      res.on('data', (d) => (s += d));
      res.on('end', () => resolve(s));
    });
    r.on('error', reject);
    for (let i = 0; i < 5; i++) r.write(Buffer.alloc(3000, 2));
    r.end();
  });
  t.same(JSON.parse(chunked), { len: 15_000, te: 'chunked', cl: null, sum: 30_000 });
  const empty = JSON.parse((await webRequest(relay, host, { method: 'POST', path: '/body' })).body.toString());
  t.same(empty, { len: 0, te: null, cl: '0', sum: 0 });
});
