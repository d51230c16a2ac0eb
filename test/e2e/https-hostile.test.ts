// Hostile HTTPS clients and broken apps against the web proxy (found by a review, each reproduced
// against the old code): a `Connection: content-length` request must not smuggle a second request
// to the app; an upgrade the app refuses must not turn the connection into an unchecked tunnel; an
// app's control character in its reason phrase must cost one 502, not the agent's tunnel and the
// relay process.
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { rmSync } from 'node:fs';
import { TARGET_HOST, createServer, freePort, startAgent } from '../helpers/cluster.js';
import { caOf, httpsHostsOf, startWebRelay } from '../helpers/web.js';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

/** An app that records every request it parses and answers 404 keep-alive (no upgrade support). */
async function recordingApp(): Promise<{ port: number; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body });
      res.writeHead(404, { 'content-type': 'text/plain' }).end('nope\n');
    });
  });
  const port = await freePort(TARGET_HOST);
  await new Promise<void>((r) => server.listen({ host: TARGET_HOST, port, exclusive: true }, r));
  return {
    port,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** An app that answers every request with a status line whose reason phrase holds a CR. */
async function badReasonApp(): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((s) => {
    s.on('error', () => undefined);
    s.once('data', () => s.write('HTTP/1.1 200 OK\rX\r\nContent-Length: 2\r\n\r\nok'));
  });
  const port = await freePort(TARGET_HOST);
  await new Promise<void>((r) => server.listen({ host: TARGET_HOST, port, exclusive: true }, r));
  return { port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const relay = await startWebRelay();
const app = await recordingApp();
const bad = await badReasonApp();
const server = await createServer(relay, { id: 'gpu-h', owner: 'hx' });
const agent = await startAgent(relay, server.token, {
  yaml: ['mappings:', `  - { internal_port: ${app.port}, http: true }`, `  - { internal_port: ${bad.port}, http: true }`].join('\n'),
});
const { secure: appHost } = await httpsHostsOf(agent, app.port);
const { secure: badHost } = await httpsHostsOf(agent, bad.port);
const port = relay.ports.https;

t.teardown(async () => {
  await agent.stop();
  await relay.stop();
  await Promise.all([app.close(), bad.close()]);
  rmSync(relay.dataDir, { recursive: true, force: true });
});

/** Writes raw bytes over TLS; resolves with everything received until the relay closes (or `ms`). */
function raw(host: string, writes: string[], gapMs = 300, ms = 5_000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    let text = '';
    const s = tls.connect({ host: '127.0.0.1', port, servername: host, ca: caOf(relay) }, async () => {
      for (const [i, w] of writes.entries()) {
        if (i > 0) await new Promise((r) => setTimeout(r, gapMs));
        if (!s.destroyed) s.write(w);
      }
    });
    s.setEncoding('latin1');
    s.on('data', (d: string) => (text += d));
    s.on('error', () => undefined);
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text, closed: false });
    }, ms);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
  });
}

t.test('Connection: content-length does not smuggle a request: the app sees one request with its body', async (t) => {
  app.seen.length = 0;
  const smuggled = `GET /smuggled HTTP/1.1\r\nHost: ${appHost}\r\nX-Portico-User: admin\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n`;
  const req = `POST /first HTTP/1.1\r\nHost: ${appHost}\r\nConnection: content-length\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`;
  const r = await raw(appHost, [req], 0, 2_000);
  t.match(r.text, /^HTTP\/1\.1 404 /, 'the client gets the answer to its one request');
  t.equal(app.seen.length, 1, `the app parsed one request (${app.seen.map((s) => `${s.method} ${s.url}`).join(', ')})`);
  t.equal(app.seen[0]?.url, '/first');
  t.equal(app.seen[0]?.body, smuggled, 'the would-be second request arrived as the body it is');
  t.equal(app.seen[0]?.headers['content-length'], String(smuggled.length), 'with the length the relay stated');
});

t.test('an upgrade the app refuses is relayed and the connection closed, never a raw tunnel', async (t) => {
  app.seen.length = 0;
  const upgrade = `GET /ws HTTP/1.1\r\nHost: ${appHost}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`;
  const next = `GET /admin HTTP/1.1\r\nHost: ${appHost}\r\nX-Portico-User: bob\r\nX-Forwarded-For: 10.1.2.3\r\n\r\n`;
  const r = await raw(appHost, [upgrade, next], 500, 5_000);
  t.match(r.text, /^HTTP\/1\.1 404 [^\r]*\r\n/, "the client gets the app's refusal");
  t.match(r.text, /\r\nConnection: close\r\n/i, 'marked as the last answer');
  t.ok(r.closed, 'and the relay closed the connection');
  t.same(
    app.seen.map((s) => s.url),
    ['/ws'],
    'the request written after the refused upgrade never reached the app',
  );
  t.notOk(app.seen.some((s) => s.headers['x-portico-user'] === 'bob'), 'no forged X-Portico-User got through');
});

t.test("a control character in the app's reason phrase: one 502, the tunnel and the relay stay up", async (t) => {
  const lines = () => agent.out.lines.filter((l) => l.startsWith('connected to')).length;
  const before = lines();
  const r = await raw(badHost, [`GET / HTTP/1.1\r\nHost: ${badHost}\r\nConnection: close\r\n\r\n`], 0, 5_000);
  t.ok(r.closed, 'answered and closed (not left hanging)');
  t.match(r.text, /^HTTP\/1\.1 502 Bad Gateway\r\n/, 'a clean 502 with the standard reason');
  t.match(r.text, /invalid HTTP response/i);
  // The same tunnel still serves the other mapping, and the relay process is alive.
  app.seen.length = 0;
  const ok = await raw(appHost, [`GET /after HTTP/1.1\r\nHost: ${appHost}\r\nConnection: close\r\n\r\n`], 0, 3_000);
  t.match(ok.text, /^HTTP\/1\.1 404 /, 'the other mapping answers');
  t.equal(lines(), before, 'the agent never had to reconnect');
  t.equal(relay.child.exitCode, null, 'the relay process is running');
});

t.test('what the app is told about the request is what the relay routed: one Host, origin-form target, no client-made Forwarded / X-Real-IP', async (t) => {
  app.seen.length = 0;
  const req =
    `GET https://evil.example/admin?x=1 HTTP/1.1\r\nHost: ${appHost}\r\nHost: evil.example\r\n` +
    `Forwarded: for=10.6.6.6;proto=http\r\nX-Real-IP: 10.6.6.6\r\nConnection: close\r\n\r\n`;
  const r = await raw(appHost, [req], 0, 3_000);
  t.match(r.text, /^HTTP\/1\.1 404 /, 'answered by the app');
  const seen = app.seen[0];
  t.equal(seen?.url, '/admin?x=1', 'the absolute-form target arrives in origin form');
  const hosts = (seen?.rawHeaders ?? []).filter((_, i, a) => i % 2 === 1 && a[i - 1]!.toLowerCase() === 'host');
  t.same(hosts, [appHost], 'one Host: the one the relay routed by');
  t.equal(seen?.headers.forwarded, undefined, "the client's Forwarded is dropped");
  t.equal(seen?.headers['x-real-ip'], undefined, "the client's X-Real-IP is dropped");
  t.match(String(seen?.headers['x-forwarded-for']), /^127\.0\.0\.1$/, 'X-Forwarded-For carries the address the relay saw');
});
