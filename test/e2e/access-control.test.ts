// Access control end to end, through a real relay and agent: for each rule one
// request that passes and one that is refused. Users API; authentication by
// user API key, Basic and browser session (login form, cookie attributes,
// expiry, logout, max_concurrent_sessions); allowed_users; IP allow/block on
// HTTPS and on a raw TCP port from real source addresses 127.0.0.3/127.0.0.4,
// X-Forwarded-For spoofing ignored; 429 after the burst and recovery after
// refill (per IP, per user, global); security headers; CORS preflight; gzip/br
// on and off, never for SSE, ranges or already-encoded bodies; WebSocket
// upgrades need the login too; and the relay log never holds a secret.
import t from 'tap';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import zlib from 'node:zlib';
import { readFileSync, rmSync } from 'node:fs';
import WebSocket, { WebSocketServer } from 'ws';
import { TARGET_HOST, createServer, freePort, startAgent, type AgentHandle } from '../helpers/cluster.js';
import { caOf, startWebRelay } from '../helpers/web.js';

// ---- the app behind the agent ----

const BIG = Buffer.from('portico access control compresses text. '.repeat(5000)); // ~200 KB
const appSeen: { method: string; url: string; headers: http.IncomingHttpHeaders }[] = [];
const app = http.createServer((req, res) => {
  appSeen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
  const url = new URL(req.url ?? '/', 'http://x');
  switch (url.pathname) {
    case '/headers':
      res.writeHead(200, { 'content-type': 'application/json', 'x-frame-options': 'ALLOW-FROM https://app.example', 'access-control-allow-origin': 'https://from-the-app' });
      res.end(JSON.stringify({ headers: req.headers }));
      return;
    case '/big':
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': BIG.length, etag: '"big1"' });
      res.end(BIG);
      return;
    case '/range': {
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (m) {
        const part = BIG.subarray(Number(m[1]), Number(m[2]) + 1);
        res.writeHead(206, { 'content-type': 'text/plain', 'content-range': `bytes ${m[1]}-${m[2]}/${BIG.length}`, 'content-length': part.length });
        res.end(part);
      } else {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BIG.length });
        res.end(BIG);
      }
      return;
    }
    case '/trickle': {
      // A plain-text log: one line every 300 ms, four lines.
      res.writeHead(200, { 'content-type': 'text/plain' });
      let i = 0;
      const tick = setInterval(() => {
        res.write(`line ${i} ${'y'.repeat(200)}\n`);
        if (++i >= 4) {
          clearInterval(tick);
          res.end();
        }
      }, 300);
      res.on('close', () => clearInterval(tick));
      return;
    }
    case '/sse': {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      let i = 0;
      const tick = setInterval(() => {
        res.write(`data: ${'x'.repeat(2000)} ${i}\n\n`);
        if (++i >= 3) {
          clearInterval(tick);
          res.end();
        }
      }, 20);
      res.on('close', () => clearInterval(tick));
      return;
    }
    case '/already': {
      const gz = zlib.gzipSync(BIG);
      res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip', 'content-length': gz.length });
      res.end(gz);
      return;
    }
    default:
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`ok ${req.method} ${req.url}\n`);
  }
});
const wss = new WebSocketServer({ server: app, path: '/ws' });
wss.on('connection', (ws) => ws.on('message', (d, bin) => ws.send(d, { binary: bin })));
await new Promise<void>((r) => app.listen(0, TARGET_HOST, r));
const appPort = (app.address() as net.AddressInfo).port;
const echo = net.createServer((s) => s.pipe(s));
await new Promise<void>((r) => echo.listen(0, TARGET_HOST, r));
const echoPort = (echo.address() as net.AddressInfo).port;

// ---- relay, server, agent, users ----

const relay = await startWebRelay();
const server = await createServer(relay, { id: 'gpu-a', owner: 'alice' });
await createServer(relay, { id: 'gpu-b', owner: 'bob' });
const agent: AgentHandle = await startAgent(relay, server.token, {
  yaml: ['mappings:', `  - { internal_port: ${appPort}, http: true, name: web }`, `  - { internal_port: ${echoPort} }`].join('\n'),
});
await agent.out.waitFor(/alice-web\.localhost/);
const port = relay.ports.https;
const HOST = `alice-web.localhost:${port}`;
const proxyView = await relay.api('GET', '/v1/servers/gpu-a/proxy');
const mappings = proxyView.body.data.port_mappings as { id: string; internal_port: number; external_port: number }[];
const web = mappings.find((m) => m.internal_port === appPort)!;
const raw = mappings.find((m) => m.internal_port === echoPort)!;

const secrets: string[] = [relay.adminKey, server.token];
async function mkUser(owner: string, username: string, password?: string) {
  const r = await relay.api('POST', '/v1/users', { owner, username, ...(password ? { password } : {}) });
  if (r.status !== 201) throw new Error(`create user: ${r.status} ${JSON.stringify(r.body)}`);
  if (password) secrets.push(password);
  return r.body.data as { id: string; username: string };
}
async function mkKey(userId: string): Promise<string> {
  const r = await relay.api('POST', `/v1/users/${userId}/keys`);
  if (r.status !== 201) throw new Error(`create key: ${r.status}`);
  secrets.push(r.body.data.key);
  return r.body.data.key as string;
}
const ann = await mkUser('alice', 'ann', 'ann-password-1');
const bob = await mkUser('alice', 'bob', 'bob-password-1');
const eve = await mkUser('bob', 'eve', 'eve-password-1');
const annKey = await mkKey(ann.id);
const eveKey = await mkKey(eve.id);
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

t.teardown(async () => {
  await agent.stop();
  await relay.stop();
  for (const c of wss.clients) c.terminate();
  wss.close();
  app.closeAllConnections();
  await new Promise<void>((r) => app.close(() => r()));
  await new Promise<void>((r) => echo.close(() => r()));
  rmSync(relay.dataDir, { recursive: true, force: true });
});

// ---- helpers ----

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}
function req(opts: { path?: string; method?: string; headers?: Record<string, string>; body?: string | Buffer; from?: string; host?: string } = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const host = opts.host ?? HOST;
    const r = https.request(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        servername: host.replace(/:\d+$/, ''),
        headers: { host, accept: 'application/json', ...(opts.headers ?? {}) },
        ca: caOf(relay),
        agent: false,
        ...(opts.from ? { localAddress: opts.from } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    r.on('error', reject);
    r.end(opts.body);
  });
}
const json = (r: Res) => JSON.parse(r.body.toString());
const setMapping = async (access_control: Record<string, unknown> | null) => {
  const r = await relay.api('PUT', `/v1/servers/gpu-a/proxy/ports/${web.id}`, { access_control });
  if (r.status !== 200) throw new Error(`PUT mapping: ${r.status} ${JSON.stringify(r.body)}`);
};
const setRawMapping = async (access_control: Record<string, unknown> | null) => {
  const r = await relay.api('PUT', `/v1/servers/gpu-a/proxy/ports/${raw.id}`, { access_control });
  if (r.status !== 200) throw new Error(`PUT raw mapping: ${r.status} ${JSON.stringify(r.body)}`);
};
const setServer = async (doc: Record<string, unknown>) => {
  const r = await relay.api('PUT', '/v1/servers/gpu-a/proxy/access', doc);
  if (r.status !== 200) throw new Error(`PUT access: ${r.status} ${JSON.stringify(r.body)}`);
};
const reset = async () => {
  await setMapping(null);
  await setRawMapping(null);
  await setServer({});
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function login(username: string, password: string, extra: Record<string, string> = {}): Promise<Res> {
  return req({
    method: 'POST',
    path: '/.portico/login',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html', origin: `https://${HOST}`, ...extra },
    body: new URLSearchParams({ username, password, next: '/headers?after=login' }).toString(),
  });
}
const cookieOf = (r: Res) => (r.headers['set-cookie']?.[0] ?? '').split(';')[0]!;

/** A raw TCP round trip from a source address: the echoed bytes, or null when refused. */
function tcpEcho(from: string): Promise<string | null> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: raw.external_port, localAddress: from });
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve(got || null);
    }, 3000);
    s.on('connect', () => s.write('ping\n'));
    s.on('data', (d) => {
      got += d.toString();
      if (got.includes('\n')) {
        clearTimeout(timer);
        s.destroy();
        resolve(got);
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got || null);
    });
  });
}

// ---- tests ----

t.test('users API: create, unique per owner, owner scoping, keys shown once', async (t) => {
  const dup = await relay.api('POST', '/v1/users', { owner: 'alice', username: 'ANN', password: 'whatever-123' });
  t.equal(dup.status, 409, 'usernames are unique per owner, case-insensitively');
  t.equal((await relay.api('POST', '/v1/users', { owner: 'alice', username: 'short', password: 'x' })).status, 400, 'password too short');
  const list = await relay.api('GET', '/v1/users?owner=alice');
  t.equal(list.status, 200);
  t.same(list.body.data.map((u: { username: string }) => u.username).sort(), ['ann', 'bob']);
  const annRow = list.body.data.find((u: { username: string }) => u.username === 'ann');
  t.match(annRow, { has_password: true, api_keys: 1 });
  t.notMatch(JSON.stringify(list.body), /scrypt|password_hash|puk_/, 'no hash or key in listings');
  const bobKey = await relay.api('POST', '/v1/keys', { owner: 'bob' });
  const ownerKey = bobKey.body.data.key as string;
  secrets.push(ownerKey);
  const scoped = await relay.api('GET', '/v1/users', undefined, ownerKey);
  t.same(scoped.body.data.map((u: { username: string }) => u.username), ['eve'], "an owner key sees only its owner's users");
  t.equal((await relay.api('DELETE', `/v1/users/${ann.id}`, undefined, ownerKey)).status, 404, "another owner's user is missing");
  t.equal((await relay.api('POST', `/v1/users/${ann.id}/keys`, undefined, ownerKey)).status, 404);
  t.equal((await relay.api('POST', '/v1/users', { owner: 'alice', username: 'mallory' }, ownerKey)).status, 400, 'an owner key cannot create users for others');
});

t.test('authentication: user key, Basic, 401 JSON for API clients and a login page for browsers', async (t) => {
  await setMapping({ authentication_required: true });
  t.teardown(reset);
  const none = await req({ path: '/headers' });
  t.equal(none.status, 401);
  t.equal(json(none).error.code, 'UNAUTHORIZED');
  t.match(none.headers['www-authenticate'], /Basic realm="portico"/, 'API clients are offered Basic');
  const page = await req({ path: '/lab?x=1', headers: { accept: 'text/html,application/xhtml+xml' } });
  t.equal(page.status, 401);
  t.match(page.headers['content-type'], /^text\/html/);
  t.match(page.body.toString(), /<form method="post" action="\/\.portico\/login">/);
  t.match(page.body.toString(), /name="next" value="\/lab\?x=1"/, 'the page returns to where the browser was going');
  t.notMatch(page.headers['www-authenticate'] ?? '', /Basic/, 'no Basic challenge for browsers (it would pop a dialog)');
  t.equal(page.headers['x-frame-options'], 'DENY');

  const byKey = await req({ path: '/headers', headers: { authorization: `Bearer ${annKey}`, cookie: 'app=1' } });
  t.equal(byKey.status, 200, 'a user API key passes');
  const seen = json(byKey).headers as Record<string, string>;
  t.notOk('authorization' in seen, 'Authorization is not forwarded to the app');
  t.equal(seen['x-portico-user'], 'ann', 'the app learns the user');
  t.equal(seen.cookie, 'app=1', "the app's own cookies pass");
  t.equal((await req({ path: '/headers', headers: { authorization: 'Bearer puk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' } })).status, 401, 'an unknown key is refused');
  t.equal((await req({ path: '/headers', headers: { authorization: `Bearer ${eveKey}` } })).status, 401, "another owner's user key is refused");
  t.equal((await req({ path: '/headers', headers: { authorization: basic('ann', 'ann-password-1') } })).status, 200, 'Basic passes');
  t.equal((await req({ path: '/headers', headers: { authorization: basic('ann', 'wrong-password') } })).status, 401, 'a wrong password is refused');
  t.equal((await req({ path: '/headers', headers: { authorization: basic('eve', 'eve-password-1') } })).status, 401, "another owner's user cannot sign in");
  const spoof = await req({ path: '/headers', headers: { authorization: `Bearer ${annKey}`, 'x-portico-user': 'admin' } });
  t.equal(json(spoof).headers['x-portico-user'], 'ann', 'a client cannot claim a user');
});

t.test('management API keys sign in too: the admin key anywhere, an owner key at its own endpoints', async (t) => {
  await setMapping({ authentication_required: true });
  t.teardown(reset);
  const admin = await req({ path: '/headers', headers: { authorization: `Bearer ${relay.adminKey}` } });
  t.equal(admin.status, 200, 'the admin key passes');
  t.notOk('authorization' in (json(admin).headers as Record<string, string>), 'and is not forwarded to the app');
  t.equal((json(admin).headers as Record<string, string>)['x-portico-user'], 'key:admin', 'a name no user can have');
  const aliceKey = (await relay.api('POST', '/v1/keys', { owner: 'alice' })).body.data.key as string;
  const bobKey = (await relay.api('POST', '/v1/keys', { owner: 'bob' })).body.data.key as string;
  secrets.push(aliceKey, bobKey);
  const own = await req({ path: '/headers', headers: { authorization: `Bearer ${aliceKey}` } });
  t.equal(own.status, 200, "the owner's own API key passes");
  t.equal((json(own).headers as Record<string, string>)['x-portico-user'], 'key:alice', "as the owner's key");
  t.equal((await req({ path: '/headers', headers: { authorization: `Bearer ${bobKey}` } })).status, 401, "another owner's API key is refused");
  t.equal((await req({ path: '/headers', headers: { authorization: `Bearer pak_${'c'.repeat(32)}` } })).status, 401, 'an unknown API key is refused');
  await setMapping({ authentication_required: true, allowed_users: ['ann'] });
  t.equal((await req({ headers: { authorization: `Bearer ${relay.adminKey}` } })).status, 200, 'the admin key passes any allowed_users');
  t.equal((await req({ headers: { authorization: `Bearer ${aliceKey}` } })).status, 403, 'an owner key is held to allowed_users (it can list only usernames)');
  // Not cached: a deleted key stops at once.
  await setMapping({ authentication_required: true });
  const keyId = (await relay.api('GET', '/v1/keys')).body.data.find((k: { owner: string }) => k.owner === 'alice').id;
  t.equal((await req({ headers: { authorization: `Bearer ${aliceKey}` } })).status, 200);
  t.equal((await relay.api('DELETE', `/v1/keys/${keyId}`)).status, 200);
  t.equal((await req({ headers: { authorization: `Bearer ${aliceKey}` } })).status, 401, 'a deleted API key is refused at once');
});

t.test('allowed_users', async (t) => {
  await setMapping({ authentication_required: true, allowed_users: ['ann'] });
  t.teardown(reset);
  t.equal((await req({ headers: { authorization: basic('ann', 'ann-password-1') } })).status, 200, 'ann is allowed');
  const refused = await req({ headers: { authorization: basic('bob', 'bob-password-1') } });
  t.equal(refused.status, 403, 'bob is a valid user but not allowed here');
  t.equal(json(refused).error.code, 'FORBIDDEN');
  t.match(json(refused).error.message, /user bob is not in the allowed_users/);
  await setMapping({ authentication_required: true, allowed_users: ['bob'] });
  t.equal((await req({ headers: { authorization: `Bearer ${annKey}` } })).status, 403, 'applies to user keys too');
});

t.test('browser session: login form, cookie attributes, use, expiry, logout', async (t) => {
  await setMapping({ authentication_required: true, session_timeout_minutes: 0.05 }); // 3 s
  t.teardown(reset);
  const bad = await login('ann', 'not-her-password');
  t.equal(bad.status, 401, 'a wrong password shows the form again');
  t.match(bad.body.toString(), /wrong username or password/);
  t.notOk(bad.headers['set-cookie'], 'and sets no cookie');
  const cross = await login('ann', 'ann-password-1', { origin: 'https://evil.example' });
  t.equal(cross.status, 403, 'a login posted from another site is refused');

  const ok = await login('ann', 'ann-password-1');
  t.equal(ok.status, 303);
  t.equal(ok.headers.location, '/headers?after=login', 'back to where the browser was going');
  const setCookie = ok.headers['set-cookie']?.[0] ?? '';
  t.match(setCookie, /^__Host-portico-session=[A-Za-z0-9_-]{43}; /);
  for (const attr of ['Path=/', 'Max-Age=3', 'Secure', 'HttpOnly', 'SameSite=Lax']) t.ok(setCookie.split('; ').includes(attr), `cookie has ${attr}`);
  t.notMatch(setCookie, /Domain=/i, 'host-only cookie (no Domain)');
  const cookie = cookieOf(ok);
  secrets.push(cookie.split('=')[1]!);

  const use = await req({ path: '/headers', headers: { cookie: `${cookie}; app=2` } });
  t.equal(use.status, 200, 'the session cookie passes');
  const seen = json(use).headers as Record<string, string>;
  t.equal(seen.cookie, 'app=2', 'the session cookie is not forwarded to the app');
  t.equal(seen['x-portico-user'], 'ann');
  // Another mapping with sign-in (nothing listens behind it): a session of `web` must not pass its
  // gate — refused with 401, not let through to a 502 from the empty port.
  const created = await relay.api('POST', '/v1/servers/gpu-a/proxy/ports', { internal_port: await freePort(TARGET_HOST), http: true, name: 'other', access_control: { authentication_required: true } });
  t.equal(created.status, 201, 'a second mapping with sign-in');
  t.teardown(() => relay.api('DELETE', `/v1/servers/gpu-a/proxy/ports/${created.body.data.id}`));
  const other = await req({ host: `alice-other.localhost:${port}`, path: '/', headers: { cookie } });
  t.equal(other.status, 401, "the cookie means nothing on another mapping's host");

  await sleep(3300);
  const expired = await req({ path: '/headers', headers: { cookie } });
  t.equal(expired.status, 401, 'expired after session_timeout_minutes');
  t.match(json(expired).error.message, /session has expired/);
  const expiredPage = await req({ path: '/', headers: { cookie, accept: 'text/html' } });
  t.equal(expiredPage.status, 401);
  t.match(expiredPage.headers['set-cookie']?.[0] ?? '', /Max-Age=0/, 'the browser is told to drop the dead cookie');

  const again = cookieOf(await login('ann', 'ann-password-1'));
  t.equal((await req({ headers: { cookie: again } })).status, 200);
  const out = await req({ method: 'POST', path: '/.portico/logout', headers: { cookie: again } });
  t.equal(out.status, 303, 'logout');
  t.equal((await req({ headers: { cookie: again } })).status, 401, 'the session ended at logout');
});

t.test('max_concurrent_sessions', async (t) => {
  await setMapping({ authentication_required: true, max_concurrent_sessions: 2 });
  t.teardown(reset);
  const a = await login('bob', 'bob-password-1');
  const b = await login('bob', 'bob-password-1');
  t.equal(a.status, 303);
  t.equal(b.status, 303, 'two sessions');
  const c = await login('bob', 'bob-password-1');
  t.equal(c.status, 403, 'the third concurrent session is refused');
  t.match(c.body.toString(), /already has 2 active sessions/);
  t.equal((await login('ann', 'ann-password-1')).status, 303, 'the cap is per user');
  t.equal((await req({ method: 'POST', path: '/.portico/logout', headers: { cookie: cookieOf(a) } })).status, 303);
  t.equal((await login('bob', 'bob-password-1')).status, 303, 'a slot frees at logout');
  t.equal((await req({ headers: { cookie: cookieOf(b) } })).status, 200, 'existing sessions keep working');
});

t.test('deleting a user ends its keys, passwords and sessions at once', async (t) => {
  await setMapping({ authentication_required: true });
  t.teardown(reset);
  const tmp = await mkUser('alice', 'temp', 'temp-password-1');
  const key = await mkKey(tmp.id);
  const cookie = cookieOf(await login('temp', 'temp-password-1'));
  t.equal((await req({ headers: { authorization: `Bearer ${key}` } })).status, 200);
  t.equal((await req({ headers: { authorization: basic('temp', 'temp-password-1') } })).status, 200);
  t.equal((await req({ headers: { cookie } })).status, 200);
  t.equal((await relay.api('DELETE', `/v1/users/${tmp.id}`)).status, 200);
  t.equal((await req({ headers: { authorization: `Bearer ${key}` } })).status, 401, 'key gone');
  t.equal((await req({ headers: { authorization: basic('temp', 'temp-password-1') } })).status, 401, 'cached password check gone');
  t.equal((await req({ headers: { cookie } })).status, 401, 'session gone');
});

t.test('IP rules on HTTPS: allow and block on the real peer address; X-Forwarded-For is ignored', async (t) => {
  await setMapping({ ip_whitelist: ['127.0.0.3/32'] });
  t.teardown(reset);
  t.equal((await req({ from: '127.0.0.3' })).status, 200, '127.0.0.3 is in the allowlist');
  const refused = await req({ from: '127.0.0.4' });
  t.equal(refused.status, 403, '127.0.0.4 is not');
  t.equal(json(refused).error.code, 'FORBIDDEN');
  t.match(json(refused).error.message, /127\.0\.0\.4 is not in the ip_whitelist of this endpoint/);
  const spoofed = await req({ from: '127.0.0.4', headers: { 'x-forwarded-for': '127.0.0.3', 'x-real-ip': '127.0.0.3', forwarded: 'for=127.0.0.3' } });
  t.equal(spoofed.status, 403, 'claiming an allowed address in X-Forwarded-For does not help');
  const seen = json(await req({ from: '127.0.0.3', path: '/headers', headers: { 'x-forwarded-for': '10.9.9.9' } })).headers;
  t.equal(seen['x-forwarded-for'], '10.9.9.9, 127.0.0.3', 'the app sees the real peer appended');

  await setMapping(null);
  await setServer({ blocked_ips: ['127.0.0.4'] });
  t.equal((await req({ from: '127.0.0.4' })).status, 403, 'server-wide blocked_ips');
  t.match(json(await req({ from: '127.0.0.4' })).error.message, /blocked/);
  t.equal((await req({ from: '127.0.0.3' })).status, 200, 'others pass');
  await setServer({ ip_whitelist: ['127.0.0.0/8'] });
  await setMapping({ blocked_ips: ['127.0.0.3'] });
  const byMapping = await req({ from: '127.0.0.3' });
  t.equal(byMapping.status, 403, 'a mapping blocklist narrows a server allowlist');
  t.match(json(byMapping).error.message, /^your address 127\.0\.0\.3 is in the blocked_ips of this endpoint \(server gpu-a or its mapping\)/);
  t.equal((await req({ from: '127.0.0.4' })).status, 200);
  const r = await relay.api('PUT', '/v1/servers/gpu-a/proxy', { allowedIps: ['127.0.0.4'] });
  t.equal(r.status, 200);
  t.equal((await req({ from: '127.0.0.1' })).status, 403, 'PUT /proxy allowedIps is enforced too');
  t.match(json(await req({ from: '127.0.0.1' })).error.message, /127\.0\.0\.1 is not in the allowlist of server gpu-a/);
  await relay.api('PUT', '/v1/servers/gpu-a/proxy', { allowedIps: [] });
});

t.test('IP rules on a raw TCP port', async (t) => {
  t.teardown(reset);
  t.equal(await tcpEcho('127.0.0.4'), 'ping\n', 'no rules: everyone');
  await setServer({ ip_whitelist: ['127.0.0.3'] });
  t.equal(await tcpEcho('127.0.0.3'), 'ping\n', 'allowlisted source passes');
  t.equal(await tcpEcho('127.0.0.4'), null, 'other source is cut before any byte reaches the app');
  await setServer({});
  await setRawMapping({ blocked_ips: ['127.0.0.3/32'] });
  t.equal(await tcpEcho('127.0.0.3'), null, 'per-mapping blocked_ips');
  t.equal(await tcpEcho('127.0.0.4'), 'ping\n');
  const log = readFileSync(relay.logFile, 'utf8');
  t.match(log, /refused tcp client 127\.0\.0\.[34] on public port/, 'refusals are logged');
});

t.test('rate limits: 429 with Retry-After after the burst, recovery after refill', async (t) => {
  t.teardown(reset);
  // 20 a minute: one token every 3 s, so a loaded machine's slow requests do not refill the bucket mid-test.
  await setMapping({ rate_limit: { requests_per_minute: 20, burst_size: 3 } });
  for (let i = 0; i < 3; i++) t.equal((await req({ from: '127.0.0.3' })).status, 200, `request ${i + 1} of the burst`);
  const limited = await req({ from: '127.0.0.3' });
  t.equal(limited.status, 429, 'the 4th is refused');
  t.equal(json(limited).error.code, 'RATE_LIMITED');
  t.ok(['1', '2', '3'].includes(String(limited.headers['retry-after'])), `Retry-After ${limited.headers['retry-after']} s: when the next token comes`);
  t.equal((await req({ from: '127.0.0.4' })).status, 200, 'another client has its own bucket');
  await sleep(3_100);
  t.equal((await req({ from: '127.0.0.3' })).status, 200, 'one token back after 3 s');
  t.equal((await req({ from: '127.0.0.3' })).status, 429);

  // Per user: the bucket follows the user across addresses.
  await setMapping({ authentication_required: true, rate_limit: { requests_per_minute: 20, burst_size: 2 } });
  const asAnn = { authorization: `Bearer ${annKey}` };
  t.equal((await req({ from: '127.0.0.3', headers: asAnn })).status, 200);
  t.equal((await req({ from: '127.0.0.4', headers: asAnn })).status, 200);
  t.equal((await req({ from: '127.0.0.1', headers: asAnn })).status, 429, "ann's bucket is empty whatever her address");
  t.equal((await req({ from: '127.0.0.3', headers: { authorization: basic('bob', 'bob-password-1') } })).status, 200, 'bob has his own');

  // Global: one bucket for the mapping, shared by every client.
  await setMapping(null);
  await setServer({ rate_limiting: { global_limit: { requests_per_minute: 20, burst_size: 2 } } });
  t.equal((await req({ from: '127.0.0.3' })).status, 200);
  t.equal((await req({ from: '127.0.0.4' })).status, 200);
  const global = await req({ from: '127.0.0.1' });
  t.equal(global.status, 429, 'the third client hits the global limit');
  t.match(json(global).error.message, /all clients/);
  await sleep(3_100);
  t.equal((await req({ from: '127.0.0.1' })).status, 200, 'and recovers');
});

t.test('security headers when configured, absent otherwise', async (t) => {
  t.teardown(reset);
  const before = await req({ path: '/headers' });
  t.notOk(before.headers['strict-transport-security'], 'no HSTS unless configured');
  t.equal(before.headers['x-frame-options'], 'ALLOW-FROM https://app.example', "the app's header passes untouched");
  await setServer({ security_headers: { hsts_enabled: true, content_security_policy: "default-src 'self'; script-src 'self'", x_frame_options: 'SAMEORIGIN' } });
  const after = await req({ path: '/headers' });
  t.equal(after.headers['strict-transport-security'], 'max-age=31536000');
  t.equal(after.headers['content-security-policy'], "default-src 'self'; script-src 'self'");
  t.equal(after.headers['x-frame-options'], 'SAMEORIGIN', 'the configured value replaces the app’s');
  const bad = await relay.api('PUT', '/v1/servers/gpu-a/proxy/access', { security_headers: { content_security_policy: "default-src 'self'\r\nSet-Cookie: x=1" } });
  t.equal(bad.status, 400, 'header injection refused by the API');
});

t.test('CORS: preflight answered from the config, headers on responses', async (t) => {
  t.teardown(reset);
  await setMapping({ cors: { enabled: true, allowed_origins: ['https://app.example.com'], allowed_methods: ['GET', 'POST'], allowed_headers: ['Content-Type', 'X-Token'] } });
  const appBefore = appSeen.filter((s) => s.method === 'OPTIONS').length;
  const pre = await req({
    method: 'OPTIONS',
    path: '/api/predict',
    headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, x-token' },
  });
  t.equal(pre.status, 204);
  t.equal(pre.headers['access-control-allow-origin'], 'https://app.example.com');
  t.equal(pre.headers['access-control-allow-methods'], 'GET, POST');
  t.equal(pre.headers['access-control-allow-headers'], 'content-type, x-token');
  t.equal(pre.headers['access-control-allow-credentials'], 'true');
  t.ok(Number(pre.headers['access-control-max-age']) > 0);
  const evil = await req({ method: 'OPTIONS', path: '/api/predict', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
  t.equal(evil.status, 403, 'an origin not in allowed_origins is refused');
  t.notOk(evil.headers['access-control-allow-origin']);
  const del = await req({ method: 'OPTIONS', path: '/x', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'DELETE' } });
  t.equal(del.status, 403, 'a method not in allowed_methods is refused');
  t.equal(appSeen.filter((s) => s.method === 'OPTIONS').length, appBefore, 'preflights never reach the app');
  const get = await req({ path: '/headers', headers: { origin: 'https://app.example.com' } });
  t.equal(get.headers['access-control-allow-origin'], 'https://app.example.com', 'the configured origin replaces what the app said');
  t.match(get.headers.vary, /Origin/);
  const getEvil = await req({ path: '/headers', headers: { origin: 'https://evil.example' } });
  t.notOk(getEvil.headers['access-control-allow-origin'], 'no CORS grant for other origins');
  // Preflights are answered before the login, which browsers never send with them.
  await setMapping({ authentication_required: true, cors: { enabled: true, allowed_origins: ['*'] } });
  const preAuth = await req({ method: 'OPTIONS', headers: { origin: 'https://any.example', 'access-control-request-method': 'GET' } });
  t.equal(preAuth.status, 204, 'preflight on a login-protected endpoint');
  t.equal(preAuth.headers['access-control-allow-origin'], '*');
});

t.test('compression: gzip and br when accepted; never for SSE, ranges, encoded bodies; off when disabled', async (t) => {
  t.teardown(reset);
  const plain = await req({ path: '/big', headers: { 'accept-encoding': 'gzip' } });
  t.notOk(plain.headers['content-encoding'], 'off unless configured');
  t.equal(plain.body.length, BIG.length);
  await setServer({ compression: { enabled: true, algorithms: ['gzip', 'br'] } });
  const gz = await req({ path: '/big', headers: { 'accept-encoding': 'gzip' } });
  t.equal(gz.status, 200);
  t.equal(gz.headers['content-encoding'], 'gzip');
  t.match(gz.headers.vary, /Accept-Encoding/);
  t.notOk(gz.headers['content-length'], 'streamed (chunked), not buffered to learn the length');
  t.equal(gz.headers.etag, 'W/"big1"', 'strong ETag weakened');
  t.ok(gz.body.length < BIG.length / 10, `compressed ${BIG.length} -> ${gz.body.length} bytes`);
  t.ok(zlib.gunzipSync(gz.body).equals(BIG), 'gunzips to the original');
  const br = await req({ path: '/big', headers: { 'accept-encoding': 'gzip, deflate, br' } });
  t.equal(br.headers['content-encoding'], 'br', 'br preferred when accepted');
  t.ok(zlib.brotliDecompressSync(br.body).equals(BIG));
  const none = await req({ path: '/big' });
  t.notOk(none.headers['content-encoding'], 'no Accept-Encoding: identity');
  t.match(none.headers.vary, /Accept-Encoding/, 'but Vary still says it depends');
  t.equal(none.headers['content-length'], String(BIG.length));
  const sse = await req({ path: '/sse', headers: { 'accept-encoding': 'gzip, br' } });
  t.notOk(sse.headers['content-encoding'], 'never for text/event-stream');
  t.match(sse.body.toString(), /data: x+ 2/);
  const range = await req({ path: '/range', headers: { 'accept-encoding': 'gzip', range: 'bytes=10-99' } });
  t.equal(range.status, 206);
  t.notOk(range.headers['content-encoding'], 'never for ranges');
  t.ok(range.body.equals(BIG.subarray(10, 100)));
  const already = await req({ path: '/already', headers: { 'accept-encoding': 'gzip, br' } });
  t.equal(already.headers['content-encoding'], 'gzip', 'an app-encoded body is left alone');
  t.ok(zlib.gunzipSync(already.body).equals(BIG), 'and not encoded twice');
  const head = await req({ method: 'HEAD', path: '/big', headers: { 'accept-encoding': 'gzip' } });
  t.equal(head.status, 200);
  await setServer({ compression: { enabled: true, algorithms: ['gzip'] } });
  t.equal((await req({ path: '/big', headers: { 'accept-encoding': 'br, gzip' } })).headers['content-encoding'], 'gzip', 'only the configured algorithms');
  await setServer({ compression: { enabled: false } });
  t.notOk((await req({ path: '/big', headers: { 'accept-encoding': 'gzip' } })).headers['content-encoding'], 'off again');
});

t.test('compression flushes a trickling response: each line reaches the client as the app sends it', async (t) => {
  t.teardown(reset);
  await setServer({ compression: { enabled: true, algorithms: ['gzip'] } });
  const arrivals: { ms: number; text: string }[] = [];
  const started = Date.now();
  await new Promise<void>((resolve, reject) => {
    const r = https.request(
      { host: '127.0.0.1', port, path: '/trickle', servername: 'alice-web.localhost', headers: { host: HOST, 'accept-encoding': 'gzip' }, ca: caOf(relay), agent: false },
      (res) => {
        t.equal(res.headers['content-encoding'], 'gzip');
        const gunzip = zlib.createGunzip();
        res.pipe(gunzip);
        gunzip.on('data', (d: Buffer) => arrivals.push({ ms: Date.now() - started, text: d.toString() }));
        gunzip.on('end', () => resolve());
        gunzip.on('error', reject);
      },
    );
    r.on('error', reject);
    r.end();
  });
  const text = arrivals.map((a) => a.text).join('');
  t.equal(text.split('\n').filter(Boolean).length, 4, 'all four lines, intact');
  t.ok(arrivals.length >= 3, `the lines came in ${arrivals.length} pieces, not one at the end`);
  const firstLine = arrivals.find((a) => a.text.includes('line 0'))!;
  t.ok(firstLine.ms < 900, `line 0 arrived after ${firstLine.ms} ms, before the app had finished (~1,200 ms)`);
});

t.test('per mapping and server-wide: security_headers and compression per mapping; authentication_required, allowed_users, rate_limit server-wide', async (t) => {
  t.teardown(reset);
  await setServer({ security_headers: { x_frame_options: 'DENY' } });
  await setMapping({ security_headers: { x_frame_options: 'SAMEORIGIN', hsts_enabled: true }, compression: { enabled: true, algorithms: ['gzip'] } });
  const own = await req({ path: '/big', headers: { 'accept-encoding': 'gzip' } });
  t.equal(own.headers['x-frame-options'], 'SAMEORIGIN', "the mapping's security headers win over the server's");
  t.equal(own.headers['strict-transport-security'], 'max-age=31536000');
  t.equal(own.headers['content-encoding'], 'gzip', 'compression on for this mapping alone');
  t.ok(zlib.gunzipSync(own.body).equals(BIG), 'gunzips to the original');
  await setMapping(null);
  const inherited = await req({ path: '/big', headers: { 'accept-encoding': 'gzip' } });
  t.equal(inherited.headers['x-frame-options'], 'DENY', "without its own: the server's");
  t.notOk(inherited.headers['content-encoding'], 'the server has no compression');

  await setServer({ authentication_required: true, allowed_users: ['ann'], rate_limit: { requests_per_minute: 600, burst_size: 50 } });
  const view = (await relay.api('GET', '/v1/servers/gpu-a/proxy')).body.data.access_control;
  t.equal(view.default_authentication, true, 'authentication_required is stored under the server-wide name');
  t.same(view.rate_limiting.per_user_limit, { requests_per_minute: 600, burst_size: 50 }, 'rate_limit likewise');
  t.same(view.allowed_users, ['ann']);
  t.equal((await req()).status, 401, 'a login is required server-wide');
  t.equal((await req({ headers: { authorization: basic('ann', 'ann-password-1') } })).status, 200);
  t.equal((await req({ headers: { authorization: basic('bob', 'bob-password-1') } })).status, 403, "the server's allowed_users");
  const clash = await relay.api('PUT', '/v1/servers/gpu-a/proxy/access', { authentication_required: true, default_authentication: false });
  t.equal(clash.status, 400, 'two names of one setting that disagree');
  t.equal(clash.body.error.details.field, 'authentication_required');
});

t.test('WebSocket upgrades need the login and honour IP rules', async (t) => {
  t.teardown(reset);
  await setMapping({ authentication_required: true });
  const open = (headers: Record<string, string>, from?: string) =>
    new Promise<{ status: number; echo?: string }>((resolve) => {
      const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, { headers: { host: HOST, ...headers }, servername: 'alice-web.localhost', ca: caOf(relay), ...(from ? { localAddress: from } : {}) } as WebSocket.ClientOptions);
      ws.on('unexpected-response', (_req, res) => {
        resolve({ status: res.statusCode ?? 0 });
        ws.terminate();
      });
      ws.on('open', () => ws.send('hi'));
      ws.on('message', (d) => {
        resolve({ status: 101, echo: d.toString() });
        ws.close();
      });
      ws.on('error', () => resolve({ status: -1 }));
    });
  t.same(await open({}), { status: 401 }, 'no login: 401 before any byte reaches the app');
  t.same(await open({ authorization: `Bearer ${annKey}` }), { status: 101, echo: 'hi' }, 'with a user key: echo');
  await setMapping({ authentication_required: true, ip_whitelist: ['127.0.0.3'] });
  t.same(await open({ authorization: `Bearer ${annKey}` }, '127.0.0.4'), { status: 403 }, 'IP rules apply to upgrades');
});

t.test('the relay log holds no API key, token, password or session cookie', async (t) => {
  await sleep(200);
  const log = readFileSync(relay.logFile, 'utf8');
  t.ok(log.length > 1000, `the log has content (${log.length} bytes)`);
  t.ok(secrets.length >= 10, `${secrets.length} secrets checked`);
  for (const s of secrets) t.notOk(log.includes(s), `secret ${s.slice(0, 4)}… not in the log`);
  t.notOk(/Basic [A-Za-z0-9+/]{8,}/.test(log), 'no Basic credentials');
  t.notOk(log.includes('__Host-portico-session='), 'no session cookie');
  t.match(log, /endpoint sign-in failed/, 'failed sign-ins are logged (without the credential)');
});
