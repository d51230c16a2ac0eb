// The HTTPS web proxy end to end with real relay and agent processes and a
// real node HTTP app behind the agent: bodies both ways, keep-alive and stream
// pooling, 100 parallel requests, forwarded/hop-by-hop headers, Host routing
// (case, port, wrong suffix, unknown token, isolation between servers), every
// error page as JSON and HTML, proxy switch and allowlist, live mappings,
// plain-HTTP redirect, TLS versions, header size limit.
import t from 'tap';
import https from 'node:https';
import http from 'node:http';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { TARGET_HOST, createServer, freePort, startAgent, type AgentHandle } from '../helpers/cluster.js';
import { caOf, httpsHostsOf, startOrigin, startWebRelay, webRequest } from '../helpers/web.js';

const relay = await startWebRelay();
const origin = await startOrigin();
const originB = await startOrigin();
const originLive = await startOrigin();
const deadPort = await freePort(TARGET_HOST);
const serverA = await createServer(relay, { id: 'gpu-a', owner: 'alice' });
const serverB = await createServer(relay, { id: 'gpu-b', owner: 'bob' });
const serverC = await createServer(relay, { id: 'gpu-c', owner: 'carol' });
const yamlA = ['mappings:', `  - { internal_port: ${origin.port}, http: true, name: web }`, `  - { internal_port: ${deadPort}, http: true }`].join('\n');
let agentA: AgentHandle = await startAgent(relay, serverA.token, { yaml: yamlA });
const agentB = await startAgent(relay, serverB.token, { yaml: `mappings:\n  - { internal_port: ${originB.port}, http: true }` });
const agentC = await startAgent(relay, serverC.token, { yaml: `mappings:\n  - { internal_port: ${origin.port}, http: true, name: offline }` });
const A = await httpsHostsOf(agentA, origin.port);
const dead = await httpsHostsOf(agentA, deadPort);
const B = await httpsHostsOf(agentB, originB.port);
const C = await httpsHostsOf(agentC, origin.port);
await agentC.stop();
const port = relay.ports.https;
const json = { accept: 'application/json' };
const browser = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };

t.teardown(async () => {
  await agentA.stop();
  await agentB.stop();
  await relay.stop();
  await Promise.all([origin.close(), originB.close(), originLive.close()]);
  rmSync(relay.dataDir, { recursive: true, force: true });
});

t.test('URLs have the SPEC shapes', async (t) => {
  t.match(A.secure, /^[a-z2-7]{26}\.secure\.localhost$/, 'token host: >=128-bit base32');
  t.equal(A.other, 'alice-web.localhost', '{owner}-{name}');
  t.equal(B.other, `bob-gpu-b-${originB.port}.localhost`, '{owner}-{server_id}-{port} without a name');
  t.equal(C.other, 'carol-offline.localhost');
});

t.test('GET and POST with bodies, on the token and the named host', async (t) => {
  for (const host of [`${A.secure}:${port}`, `${A.other}:${port}`]) {
    const get = await webRequest(relay, host, { path: '/some/path?x=1' });
    t.equal(get.status, 200);
    t.equal(get.body.toString(), 'hello GET /some/path?x=1\n');
    const body = randomBytes(3 * 1024 * 1024 + 17);
    const post = await webRequest(relay, host, { method: 'POST', path: '/echo', body, headers: { 'content-type': 'application/x-test' } });
    t.equal(post.status, 200);
    t.equal(post.headers['content-type'], 'application/x-test');
    t.ok(post.body.equals(body), 'POST body echoed byte for byte');
  }
  // Chunked upload (no content-length).
  const chunked = await new Promise<string>((resolve, reject) => {
    const r = https.request({ host: '127.0.0.1', port, servername: A.secure, path: '/upload', method: 'PUT', headers: { host: A.secure }, ca: caOf(relay), agent: false }, (res) => {
      let s = '';
      res.on('data', (d) => (s += d));
      res.on('end', () => resolve(s));
    });
    r.on('error', reject);
    for (let i = 0; i < 10; i++) r.write(Buffer.alloc(10_000, i));
    r.end();
  });
  t.equal(JSON.parse(chunked).bytes, 100_000, 'chunked request body arrives whole');
});

t.test('X-Forwarded-*, Host kept, hop-by-hop headers dropped both ways', async (t) => {
  const host = `${A.secure}:${port}`;
  const res = await webRequest(relay, host, {
    path: '/echo-headers',
    headers: {
      'x-forwarded-for': '203.0.113.9',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'evil.example',
      connection: 'keep-alive, x-private-hop',
      'x-private-hop': 'secret',
      'keep-alive': 'timeout=99',
      te: 'trailers',
      'proxy-authorization': 'Basic Zm9vOmJhcg==',
      'x-end-to-end': 'kept',
      authorization: 'Bearer app-token',
    },
  });
  t.equal(res.status, 200);
  const seen = JSON.parse(res.body.toString()) as { headers: Record<string, string> };
  t.equal(seen.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1', 'client address appended');
  t.equal(seen.headers['x-forwarded-proto'], 'https');
  t.equal(seen.headers['x-forwarded-host'], host);
  t.equal(seen.headers.host, host, 'Host kept by default');
  t.equal(seen.headers['x-end-to-end'], 'kept');
  t.equal(seen.headers.authorization, 'Bearer app-token', 'end-to-end auth passes to the app');
  for (const h of ['x-private-hop', 'keep-alive', 'te', 'proxy-authorization']) t.notOk(h in seen.headers, `${h} not forwarded`);
  t.notOk('x-hop' in res.headers, 'a header the app named in Connection is not forwarded');
  t.not(res.headers['keep-alive'], 'timeout=5', "the app's Keep-Alive is not forwarded");
  t.notOk(await logHas(relay.logFile, 'app-token'), 'Authorization never logged');
});

t.test('keep-alive to the client and pooled streams to the agent', async (t) => {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: caOf(relay) });
  t.teardown(() => agent.destroy());
  const before = origin.connections;
  const ports = new Set<number>();
  for (let i = 0; i < 30; i++) {
    const r = await webRequest(relay, A.secure, { path: `/k/${i}`, agent });
    t.equal(r.status, 200);
    ports.add(r.localPort);
  }
  t.equal(ports.size, 1, 'one client connection served all 30 requests');
  t.ok(origin.connections - before <= 2, `the app saw ${origin.connections - before} new connections for 30 requests (streams are pooled)`);
});

t.test('100 parallel requests', async (t) => {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 100, ca: caOf(relay) });
  t.teardown(() => agent.destroy());
  const results = await Promise.all(Array.from({ length: 100 }, (_, i) => webRequest(relay, A.other, { path: `/p/${i}`, agent })));
  t.equal(results.filter((r, i) => r.status === 200 && r.body.toString() === `hello GET /p/${i}\n`).length, 100, 'each got its own answer');
});

t.test('Host routing: case, port, trailing dot, wrong suffix, unknown token, isolation', async (t) => {
  const tag = (name: string) => ({ headers: { 'x-test-tag': name, ...json } });
  t.equal((await webRequest(relay, A.secure.toUpperCase(), tag('upper'))).status, 200, 'mixed case routed');
  t.equal((await webRequest(relay, `${A.secure}:${port}`, tag('port'))).status, 200, 'host with port routed');
  t.equal((await webRequest(relay, `${A.secure}.`, { ...tag('dot'), servername: A.secure })).status, 200, 'trailing dot routed');
  const token = A.secure.split('.')[0]!;
  for (const wrong of [`${token}.localhost`, `${token}.secure.example.com`, `${token}.secure.localhost.evil.com`, `x.${A.secure}`, `${token}`]) {
    const r = await webRequest(relay, wrong, { ...tag('wrong'), servername: 'localhost' });
    t.equal(r.status, 404, `${wrong} refused`);
    t.equal(JSON.parse(r.body.toString()).error.code, 'NOT_FOUND');
  }
  const unknown = await webRequest(relay, `${'a'.repeat(26)}.secure.localhost`, tag('unknown'));
  t.equal(unknown.status, 404, 'unknown token refused');
  t.notOk(origin.seen.has('wrong') || origin.seen.has('unknown'), 'refused hosts never reach an app');
  // Server B's host reaches only B's app; A's only A's.
  await webRequest(relay, B.secure, tag('for-b'));
  await webRequest(relay, A.secure, tag('for-a'));
  t.equal(originB.seen.get('for-b'), 1);
  t.notOk(origin.seen.has('for-b'), "B's request never reached A's app");
  t.notOk(originB.seen.has('for-a'), "A's request never reached B's app");
});

t.test('errors: unknown host 404, agent offline 502, nothing listening 502 — JSON and HTML', async (t) => {
  const cases = [
    { host: 'nobody-here.localhost', status: 404, code: 'NOT_FOUND', text: /no HTTPS endpoint is published at nobody-here\.localhost/ },
    { host: C.secure, status: 502, code: 'AGENT_OFFLINE', text: /server gpu-c is not connected/ },
    { host: C.other, status: 502, code: 'AGENT_OFFLINE', text: /server gpu-c is not connected/ },
    {
      host: dead.secure,
      status: 502,
      code: 'NOTHING_LISTENING',
      text: new RegExp(`nothing is listening on port ${deadPort} inside gpu-a; bind your app to 0\\.0\\.0\\.0:${deadPort} or 127\\.0\\.0\\.1:${deadPort}`),
    },
  ];
  for (const c of cases) {
    // --dev mints a certificate for unknown *.localhost names too (relay/vhost/dev-sni.ts), so the
    // client verifies against the dev CA and gets the relay's 404, as curl --cacert would.
    const j = await webRequest(relay, c.host, { headers: json });
    t.equal(j.status, c.status, `${c.code} status (JSON)`);
    t.match(j.headers['content-type'], /^application\/json/);
    const body = JSON.parse(j.body.toString());
    t.equal(body.success, false);
    t.equal(body.error.code, c.code);
    t.match(body.error.message, c.text);
    const h = await webRequest(relay, c.host, { headers: browser });
    t.equal(h.status, c.status, `${c.code} status (HTML)`);
    t.match(h.headers['content-type'], /^text\/html/);
    t.match(h.body.toString(), /^<!doctype html>/);
    t.match(h.body.toString(), c.text, 'the page says what is wrong');
  }
  const err = await webRequest(relay, 'example.org', { headers: json, servername: 'localhost' });
  t.match(JSON.parse(err.body.toString()).error.details.hint, /Custom domains and custom certificates are not supported/);
  // The connection stays usable after an error page.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: caOf(relay) });
  t.teardown(() => agent.destroy());
  const e1 = await webRequest(relay, dead.secure, { agent, headers: json });
  const ok = await webRequest(relay, A.secure, { agent });
  t.equal(ok.status, 200);
  t.equal(e1.localPort, ok.localPort, 'same client connection after a 502');
});

t.test('proxy switched off, IP allowlist', async (t) => {
  const off = await relay.api('PUT', '/v1/servers/gpu-a/proxy', { enabled: false });
  t.equal(off.status, 200);
  const r = await webRequest(relay, A.secure, { headers: json });
  t.equal(r.status, 404);
  t.match(JSON.parse(r.body.toString()).error.message, /the HTTPS proxy of server gpu-a is turned off/);
  await relay.api('PUT', '/v1/servers/gpu-a/proxy', { enabled: true });
  t.equal((await webRequest(relay, A.secure)).status, 200, 'back on');

  await relay.api('PUT', '/v1/servers/gpu-a/proxy', { allowedIps: ['10.0.0.0/8', '2001:db8::/32'] });
  const denied = await webRequest(relay, A.secure, { headers: json });
  t.equal(denied.status, 403);
  t.match(JSON.parse(denied.body.toString()).error.message, /127\.0\.0\.1 is not in the allowlist of server gpu-a/);
  await relay.api('PUT', '/v1/servers/gpu-a/proxy', { allowedIps: ['127.0.0.0/8'] });
  t.equal((await webRequest(relay, A.secure)).status, 200, 'allowed range');
  await relay.api('PUT', '/v1/servers/gpu-a/proxy', { allowedIps: [] });
  t.equal((await webRequest(relay, A.secure)).status, 200, 'empty list = everyone');
});

t.test('mappings added and removed through the API are routed live', async (t) => {
  const created = await relay.api('POST', '/v1/servers/gpu-a/proxy/ports', { internal_port: originLive.port, http: true, name: 'live' });
  t.equal(created.status, 201, 'mapping created');
  const urls: string[] = created.body.data.urls.https;
  t.ok(urls.includes(`https://alice-live.localhost:${port}`), 'named URL returned');
  const host = new URL(urls[0]!).hostname;
  const r = await webRequest(relay, host, { headers: { 'x-test-tag': 'live' } });
  t.equal(r.status, 200);
  t.equal(originLive.seen.get('live'), 1, 'served by the new mapping');
  t.equal((await webRequest(relay, 'alice-live.localhost')).status, 200);
  const del = await relay.api('DELETE', `/v1/servers/gpu-a/proxy/ports/${created.body.data.id}`);
  t.ok(del.status === 200 || del.status === 204, `deleted (${del.status})`);
  t.equal((await webRequest(relay, host)).status, 404, 'gone at once');
  t.equal((await webRequest(relay, 'alice-live.localhost')).status, 404, 'the removed named host: 404 with a verified certificate');
});

t.test('URLs are stable across agent reconnects', async (t) => {
  await agentA.stop();
  agentA = await startAgent(relay, serverA.token, { yaml: yamlA });
  const again = await httpsHostsOf(agentA, origin.port);
  t.same(again, A);
  t.equal((await webRequest(relay, A.secure)).status, 200);
});

t.test('plain HTTP redirects to HTTPS', async (t) => {
  const get = (method: string) =>
    new Promise<http.IncomingMessage>((resolve, reject) => {
      const r = http.request({ host: '127.0.0.1', port: relay.ports.http, method, path: '/a/b?c=d', headers: { host: `${A.other}:${relay.ports.http}` } }, (res) => {
        res.resume();
        resolve(res);
      });
      r.on('error', reject);
      r.end();
    });
  const g = await get('GET');
  t.equal(g.statusCode, 301);
  t.equal(g.headers.location, `https://${A.other}:${port}/a/b?c=d`);
  const p = await get('POST');
  t.equal(p.statusCode, 308, 'non-GET keeps its method');
});

t.test('TLS: 1.2 and 1.3 only, AEAD ciphers, HTTP/1.1 by ALPN', async (t) => {
  const hello = (opts: tls.ConnectionOptions) =>
    new Promise<tls.TLSSocket | Error>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: A.secure, ca: caOf(relay), ...opts }, () => resolve(s));
      s.once('error', (e) => resolve(e));
    });
  const v13 = await hello({ ALPNProtocols: ['h2', 'http/1.1'] });
  t.notOk(v13 instanceof Error);
  if (!(v13 instanceof Error)) {
    t.equal(v13.getProtocol(), 'TLSv1.3');
    t.equal(v13.alpnProtocol, 'http/1.1', 'no h2 offered');
    v13.destroy();
  }
  const v12 = await hello({ maxVersion: 'TLSv1.2' });
  t.notOk(v12 instanceof Error);
  if (!(v12 instanceof Error)) {
    t.match(v12.getCipher().name, /GCM|CHACHA20/);
    v12.destroy();
  }
  const v11 = await hello({ maxVersion: 'TLSv1.1', minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' });
  t.ok(v11 instanceof Error, 'TLS 1.1 refused');
  const cbc = await hello({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA' });
  t.ok(cbc instanceof Error, 'CBC-only client refused');
});

t.test('oversized request headers get 431', async (t) => {
  const r = await webRequest(relay, A.secure, { headers: { 'x-big': 'x'.repeat(40 * 1024) } }).catch((e: Error) => e);
  t.notOk(r instanceof Error, 'answered, not reset');
  if (!(r instanceof Error)) t.equal(r.status, 431);
  t.equal((await webRequest(relay, A.secure, { headers: { 'x-medium': 'x'.repeat(12 * 1024) } })).status, 200, '12 KiB of headers is fine');
});

async function logHas(file: string, needle: string): Promise<boolean> {
  const { readFile } = await import('node:fs/promises');
  return (await readFile(file, 'utf8')).includes(needle);
}
