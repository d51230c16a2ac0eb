// The pure access-control modules (relay/access/): IP rules, token buckets,
// sessions, passwords, credentials, CORS, security headers, compression
// decisions, and how stored documents compile into a route's policy.
import t from 'tap';
import { checkIp, compileIpPolicy } from '../../relay/access/ip-rules.js';
import { RateLimiter, limitFrom } from '../../relay/access/rate-limit.js';
import { SessionStore } from '../../relay/access/sessions.js';
import { hashPassword, parsePasswordHash, verifyPassword } from '../../relay/access/passwords.js';
import { Authenticator, parseAuthorization, sessionCookie, withoutSessionCookie, SESSION_COOKIE } from '../../relay/access/auth.js';
import { answerPreflight, applyCors, compileCors } from '../../relay/access/cors.js';
import { applySecurityHeaders, compileSecurityHeaders } from '../../relay/access/security-headers.js';
import { compileCompression, compressibleType, negotiate, prepareCompression } from '../../relay/access/compress.js';
import { compileHttpAccess, compileRawIpPolicy } from '../../relay/access/policy.js';
import { checkAccessExtras } from '../../relay/access/validate.js';
import { safeNext } from '../../relay/access/login-page.js';
import type { UserRecord } from '../../relay/store/store.js';

t.test('IP rules: allowlists AND, blocklist wins, v4/v6/mapped, unparseable refused', async (t) => {
  const p = compileIpPolicy(
    [
      { scope: 'server', entries: ['10.0.0.0/8', '2001:db8::/32', '127.0.0.3'] },
      { scope: 'mapping', entries: ['10.1.0.0/16', '2001:db8:1::/48', '127.0.0.0/8'] },
    ],
    [['10.1.2.3'], ['::ffff:10.1.9.0/120']],
  )!;
  t.same(checkIp(p, '10.1.2.4'), { ok: true }, 'in both allowlists');
  t.same(checkIp(p, '::ffff:10.1.2.4'), { ok: true }, 'IPv4-mapped client is the IPv4 address');
  t.match(checkIp(p, '10.2.0.1'), { ok: false, reason: 'not_allowed', scope: 'mapping' }, 'server list passes, mapping list narrows');
  t.match(checkIp(p, '192.168.1.1'), { ok: false, reason: 'not_allowed', scope: 'server' });
  t.match(checkIp(p, '10.1.2.3'), { ok: false, reason: 'blocked' }, 'blocklist wins over allowlists');
  t.match(checkIp(p, '10.1.9.77'), { ok: false, reason: 'blocked' }, 'IPv4-mapped CIDR rule applies to IPv4 clients');
  t.same(checkIp(p, '2001:db8:1::5'), { ok: true });
  t.match(checkIp(p, '2001:db8:2::5'), { ok: false, scope: 'mapping' });
  t.same(checkIp(p, '127.0.0.3'), { ok: true }, 'single address entry');
  t.match(checkIp(p, '127.0.0.4'), { ok: false, scope: 'server' });
  t.match(checkIp(p, 'garbage'), { ok: false });
  t.equal(compileIpPolicy([{ scope: 'server', entries: [] }], [[], undefined]), null, 'nothing configured compiles to null');
  const bad: string[] = [];
  const q = compileIpPolicy([{ scope: 'server', entries: ['nope', '0.0.0.0/0'] }], [], (e) => bad.push(e))!;
  t.same(bad, ['nope'], 'unparseable entries reported');
  t.same(checkIp(q, '8.8.8.8'), { ok: true }, '0.0.0.0/0 allows every IPv4');
  t.match(checkIp(q, '::1'), { ok: false }, 'but not IPv6');
  const block = compileIpPolicy([], [['::/0', '0.0.0.0/0']])!;
  t.match(checkIp(block, '1.2.3.4'), { ok: false, reason: 'blocked' });
});

t.test('token buckets: burst, refill, Retry-After, limit changes, bounded memory', async (t) => {
  const rl = new RateLimiter({ maxKeys: 100, sweepEvery: 10 });
  const lim = { requestsPerMinute: 60, burst: 3 };
  let now = 1_000_000;
  t.equal(rl.take('a', lim, now), 0);
  t.equal(rl.take('a', lim, now), 0);
  t.equal(rl.take('a', lim, now), 0);
  const wait = rl.take('a', lim, now);
  t.ok(wait > 900 && wait <= 1000, `4th request waits ~1 s (${wait} ms)`);
  t.equal(rl.peek('a', lim, now), wait, 'peek says the same without taking');
  now += 1000;
  t.equal(rl.take('a', lim, now), 0, 'one token back after 1 s');
  t.ok(rl.take('a', lim, now) > 0);
  t.equal(rl.take('b', lim, now), 0, 'buckets are per key');
  // A smaller limit applies at once to a bucket in use.
  now += 60_000;
  t.equal(rl.take('a', { requestsPerMinute: 60, burst: 1 }, now), 0);
  t.ok(rl.take('a', { requestsPerMinute: 60, burst: 1 }, now) > 0, 'burst shrank to 1');
  // Memory: 10,000 one-off clients never hold more than maxKeys buckets; idle ones are swept.
  for (let i = 0; i < 10_000; i++) rl.take(`ip${i}`, lim, now + i);
  t.ok(rl.size <= 100, `bounded (${rl.size} buckets)`);
  now += 10 * 60_000 + 10_000;
  rl.sweep(now);
  t.equal(rl.size, 0, 'every idle bucket refilled and was dropped');
  t.same(limitFrom({ requests_per_minute: 100 }), { requestsPerMinute: 100, burst: 100 }, 'burst defaults to a minute');
  t.same(limitFrom({ requests_per_minute: 100, burst_size: 20 }), { requestsPerMinute: 100, burst: 20 });
  t.equal(limitFrom({ burst_size: 20 }), null);
});

t.test('sessions: expiry, per-user cap, logout, bounded table', async (t) => {
  const s = new SessionStore(5);
  const f = { serverId: 'srv', mappingId: 'm', userId: 'u1', username: 'ann' };
  const a = s.create(f, 1000, 2, 0);
  t.ok(a.ok);
  if (!a.ok) return;
  t.match(a.session.id, /^[A-Za-z0-9_-]{43}$/, '256-bit base64url id');
  t.equal(s.get(a.session.id, 999)?.username, 'ann');
  t.equal(s.get(a.session.id, 1000), undefined, 'expired at ttl');
  t.equal(s.size, 0, 'expired session removed');
  t.ok(s.create(f, 1000, 2, 2000).ok);
  t.ok(s.create(f, 1000, 2, 2000).ok);
  t.match(s.create(f, 1000, 2, 2000), { ok: false, reason: 'user_limit', active: 2 }, 'third concurrent session refused');
  t.ok(s.create({ ...f, userId: 'u2' }, 1000, 2, 2000).ok, 'the cap is per user');
  t.ok(s.create(f, 1000, 2, 3001).ok, 'a slot frees when a session expires');
  const b = s.create({ ...f, userId: 'u3' }, 1000, null, 3001);
  t.ok(b.ok);
  if (b.ok) t.ok(s.delete(b.session.id), 'logout');
  for (let i = 0; i < 10; i++) s.create({ ...f, userId: `x${i}` }, 10_000, null, 3001);
  t.ok(s.size <= 5, 'table bounded');
  const r = new SessionStore();
  r.create({ ...f, userId: 'gone' }, 10_000, null, 0);
  r.create({ ...f, userId: 'kept' }, 10_000, null, 0);
  t.equal(r.retain((x) => x.userId !== 'gone'), 1, 'retain drops a deleted user');
  t.equal(r.active('srv', 'kept', 0), 1);
});

t.test('passwords: scrypt N=2^15 r=8, self-describing, constant-time verify', async (t) => {
  const h = await hashPassword('correct horse');
  t.match(h, /^scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}$/);
  t.not(await hashPassword('correct horse'), h, 'random salt');
  t.ok(await verifyPassword('correct horse', h));
  t.notOk(await verifyPassword('correct horsf', h));
  t.notOk(await verifyPassword('', h));
  t.notOk(await verifyPassword('x', null), 'no stored hash never matches');
  t.notOk(await verifyPassword('x', 'scrypt$ln=30,r=8,p=1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA=='), 'absurd cost parameters are not trusted');
  t.equal(parsePasswordHash('plain'), null);
});

t.test('credentials: Authorization and cookie parsing, cookie scrubbing', async (t) => {
  t.same(parseAuthorization('Bearer puk_abc'), { kind: 'bearer', key: 'puk_abc' });
  t.same(parseAuthorization(`Basic ${Buffer.from('ann:pa:ss').toString('base64')}`), { kind: 'basic', username: 'ann', password: 'pa:ss' });
  t.equal(parseAuthorization('Basic !!!'), null);
  t.equal(parseAuthorization(`Basic ${Buffer.from('nocolon').toString('base64')}`), null);
  t.equal(parseAuthorization('Digest x'), null);
  t.equal(parseAuthorization(undefined), null);
  const c = `a=1; ${SESSION_COOKIE}=SECRET; b=2`;
  t.equal(sessionCookie(c), 'SECRET');
  t.equal(withoutSessionCookie(c), 'a=1; b=2');
  t.equal(withoutSessionCookie(`${SESSION_COOKIE}=SECRET`), null);
  t.equal(sessionCookie('a=1'), undefined);
  t.equal(safeNext('/lab?x=1'), '/lab?x=1');
  for (const bad of ['//evil.com', 'https://evil.com', '/\\evil.com', 'x', '/.portico/login']) t.equal(safeNext(bad), '/', `${bad} -> /`);
});

t.test('authenticator: owner scoping, cache, deleted users', async (t) => {
  const pw = await hashPassword('s3cret-pass');
  const users: UserRecord[] = [{ id: 'usr_1', owner: 'alice', username: 'Ann', passwordHash: pw, createdAt: '', updatedAt: '' }];
  const { createHash } = await import('node:crypto');
  const key = 'puk_' + 'a'.repeat(32);
  const keyHash = createHash('sha256').update(key).digest('hex');
  let lookups = 0;
  const dir = {
    findUser: async (owner: string, name: string) => {
      lookups++;
      return users.find((u) => u.owner === owner && u.username.toLowerCase() === name.toLowerCase());
    },
    findUserKeyByHash: async (h: string) => (h === keyHash && users[0] ? { key: { id: 'k', userId: 'usr_1', keyHash, createdAt: '' }, user: users[0] } : undefined),
  };
  const auth = new Authenticator(dir);
  t.match(await auth.verify({ kind: 'basic', username: 'ann', password: 's3cret-pass' }, 'alice'), { username: 'Ann', via: 'basic' });
  t.equal(await auth.verify({ kind: 'basic', username: 'ann', password: 'wrong' }, 'alice'), 'invalid');
  t.equal(await auth.verify({ kind: 'basic', username: 'ann', password: 's3cret-pass' }, 'bob'), 'invalid', "another owner's endpoint");
  const hashes = auth.hashes;
  await auth.verify({ kind: 'basic', username: 'ann', password: 's3cret-pass' }, 'alice');
  t.equal(auth.hashes, hashes, 'a verified password is cached (no second scrypt)');
  t.match(await auth.verify({ kind: 'bearer', key }, 'alice'), { username: 'Ann', via: 'key' });
  t.equal(await auth.verify({ kind: 'bearer', key }, 'bob'), 'invalid');
  t.equal(await auth.verify({ kind: 'bearer', key: 'puk_' + 'b'.repeat(32) }, 'alice'), 'invalid');
  users.length = 0;
  auth.invalidate();
  t.equal(await auth.verify({ kind: 'bearer', key }, 'alice'), 'invalid', 'deleted user no longer verifies');
  t.ok(lookups > 0);
});

t.test('CORS: preflight answers and response headers from config', async (t) => {
  const p = compileCors({ enabled: true, allowed_origins: ['https://app.example.com'], allowed_methods: ['GET', 'POST'], allowed_headers: ['Content-Type', 'Authorization'] })!;
  const ok = answerPreflight(p, 'https://app.example.com', 'POST', 'content-type, authorization');
  t.equal(ok.status, 204);
  t.equal(ok.headers['access-control-allow-origin'], 'https://app.example.com');
  t.equal(ok.headers['access-control-allow-methods'], 'GET, POST');
  t.equal(ok.headers['access-control-allow-headers'], 'content-type, authorization');
  t.equal(ok.headers['access-control-allow-credentials'], 'true');
  t.equal(answerPreflight(p, 'https://evil.example', 'POST', undefined).status, 403);
  t.equal(answerPreflight(p, 'https://app.example.com', 'DELETE', undefined).status, 403);
  t.equal(answerPreflight(p, 'https://app.example.com', 'GET', 'x-other').status, 403);
  const any = compileCors({ enabled: true, allowed_origins: ['*'], allowed_headers: ['*'] })!;
  const a = answerPreflight(any, 'https://x.test', 'GET', 'X-A');
  t.equal(a.headers['access-control-allow-origin'], '*');
  t.equal(a.headers['access-control-allow-headers'], 'x-a', '* echoes the asked headers');
  t.notOk('access-control-allow-credentials' in a.headers, 'no credentials with *');
  const raw = ['Access-Control-Allow-Origin', 'https://other', 'Content-Type', 'text/plain'];
  applyCors(raw, p, 'https://app.example.com');
  t.same(raw, ['Content-Type', 'text/plain', 'Vary', 'Origin', 'Access-Control-Allow-Origin', 'https://app.example.com', 'Access-Control-Allow-Credentials', 'true'], "the app's CORS headers are replaced");
  t.equal(compileCors({ enabled: false, allowed_origins: ['*'] }), null);
});

t.test('security headers', async (t) => {
  const h = compileSecurityHeaders({ hsts_enabled: true, content_security_policy: "default-src 'self'", x_frame_options: 'SAMEORIGIN' })!;
  const raw = ['x-frame-options', 'ALLOW-FROM x', 'Content-Type', 'text/html'];
  applySecurityHeaders(raw, h);
  t.same(raw, ['Content-Type', 'text/html', 'Strict-Transport-Security', 'max-age=31536000', 'Content-Security-Policy', "default-src 'self'", 'X-Frame-Options', 'SAMEORIGIN']);
  const bad: string[] = [];
  t.equal(compileSecurityHeaders({ content_security_policy: 'a\r\nSet-Cookie: x=1' }, (f) => bad.push(f)), null, 'header injection dropped');
  t.same(bad, ['content_security_policy']);
  t.equal(compileSecurityHeaders({ hsts_enabled: false }), null);
});

t.test('compression decisions', async (t) => {
  const p = compileCompression({ enabled: true, algorithms: ['gzip', 'br'] })!;
  t.equal(negotiate(p, 'gzip, deflate, br'), 'br');
  t.equal(negotiate(p, 'gzip;q=1, br;q=0.5'), 'gzip');
  t.equal(negotiate(p, 'br;q=0, gzip'), 'gzip');
  t.equal(negotiate(p, 'identity'), null);
  t.equal(negotiate(p, '*'), 'br');
  t.equal(negotiate(compileCompression({ enabled: true, algorithms: ['gzip'] })!, 'br, gzip'), 'gzip');
  t.equal(compileCompression({ enabled: false }), null);
  for (const ct of ['text/html; charset=utf-8', 'application/json', 'application/vnd.api+json', 'image/svg+xml', 'application/javascript']) t.ok(compressibleType(ct), ct);
  for (const ct of ['text/event-stream', 'application/x-ndjson', 'image/png', 'application/octet-stream', undefined]) t.notOk(compressibleType(ct), String(ct));
  const req = { method: 'GET', acceptEncoding: 'gzip', hasRange: false, streaming: false };
  const raw = ['Content-Type', 'application/json', 'Content-Length', '5000', 'ETag', '"abc"'];
  t.equal(prepareCompression(p, req, 200, raw), 'gzip');
  t.same(raw, ['Content-Type', 'application/json', 'ETag', 'W/"abc"', 'Vary', 'Accept-Encoding', 'Content-Encoding', 'gzip']);
  const small = ['Content-Type', 'text/plain', 'Content-Length', '10'];
  t.equal(prepareCompression(p, req, 200, small), null, 'tiny bodies are left alone');
  t.same(small.slice(-2), ['Vary', 'Accept-Encoding'], 'but still vary');
  t.equal(prepareCompression(p, req, 206, ['Content-Type', 'text/plain']), null, 'never a 206');
  t.equal(prepareCompression(p, { ...req, hasRange: true }, 200, ['Content-Type', 'text/plain']), null, 'never for a Range request');
  t.equal(prepareCompression(p, { ...req, streaming: true }, 200, ['Content-Type', 'text/plain']), null, 'never for streams');
  t.equal(prepareCompression(p, req, 200, ['Content-Type', 'text/event-stream']), null, 'never for SSE');
  t.equal(prepareCompression(p, req, 200, ['Content-Type', 'text/plain', 'Content-Encoding', 'gzip']), null, 'never twice');
  t.equal(prepareCompression(p, req, 200, ['Content-Type', 'text/plain', 'Cache-Control', 'public, no-transform']), null, 'no-transform honoured');
  t.equal(prepareCompression(p, { ...req, method: 'HEAD' }, 200, ['Content-Type', 'text/plain']), null);
  t.equal(prepareCompression(p, { ...req, acceptEncoding: undefined }, 200, ['Content-Type', 'text/plain']), null);
});

t.test('policy compilation: precedence, null when nothing is configured', async (t) => {
  const server = { id: 'gpu', owner: 'alice', allowedIps: [] as string[], access: null as Record<string, unknown> | null };
  t.equal(compileHttpAccess(server, { id: 'm', accessControl: null }), null, 'nothing configured -> null (zero overhead)');
  t.equal(compileHttpAccess(server, { id: 'm', accessControl: { authentication_required: false } }), null);
  const withDefault = { ...server, access: { default_authentication: true, session_timeout_minutes: 30, max_concurrent_sessions: 3 } };
  const a = compileHttpAccess(withDefault, { id: 'm', accessControl: { allowed_users: ['Ann'] } })!;
  t.match(a.auth, { owner: 'alice', mappingId: 'm', sessionTtlMs: 30 * 60_000, maxSessions: 3 });
  t.ok(a.auth!.allowedUsers!.has('ann'), 'usernames compare case-insensitively');
  const serverUsers = { ...withDefault, access: { ...withDefault.access, allowed_users: ['bob'] } };
  t.same([...compileHttpAccess(serverUsers, { id: 'm', accessControl: null })!.auth!.allowedUsers!], ['bob'], "the server's allowed_users when the mapping has none");
  t.same([...compileHttpAccess(serverUsers, { id: 'm', accessControl: { allowed_users: [] } })!.auth!.allowedUsers!], ['bob'], 'an empty mapping list neither opens nor narrows it');
  t.same([...compileHttpAccess(serverUsers, { id: 'm', accessControl: { allowed_users: ['Ann'] } })!.auth!.allowedUsers!], ['ann'], "the mapping's own list wins");
  t.equal(compileHttpAccess(withDefault, { id: 'm', accessControl: { public_access: true } })?.auth ?? null, null, 'public_access overrides the default');
  t.equal(compileHttpAccess(withDefault, { id: 'm', accessControl: { authentication_required: false } })?.auth ?? null, null);
  const rl = compileHttpAccess(
    { ...server, access: { rate_limiting: { global_limit: { requests_per_minute: 1000, burst_size: 100 }, per_user_limit: { requests_per_minute: 200 } } } },
    { id: 'm', accessControl: { rate_limit: { requests_per_minute: 10, burst_size: 2 } } },
  )!;
  t.same(rl.rate, { mappingId: 'm', global: { requestsPerMinute: 1000, burst: 100 }, perClient: { requestsPerMinute: 10, burst: 2 } }, 'mapping rate_limit overrides per_user_limit');
  const ip = compileHttpAccess({ ...server, allowedIps: ['10.0.0.0/8'] }, { id: 'm', accessControl: null })!;
  t.match(checkIp(ip.ip!, '11.0.0.1'), { ok: false, scope: 'proxy' }, 'PUT /proxy allowedIps applies to HTTPS');
  t.equal(compileRawIpPolicy({ access: null }, { accessControl: null }), null, "allowedIps is not a raw-port rule");
  const raw = compileRawIpPolicy({ access: { blocked_ips: ['127.0.0.4'] } }, { accessControl: { ip_whitelist: ['127.0.0.0/8'] } })!;
  t.match(checkIp(raw, '127.0.0.4'), { ok: false, reason: 'blocked' });
  t.same(checkIp(raw, '127.0.0.3'), { ok: true });
});

t.test('validation of header-bound values', async (t) => {
  t.doesNotThrow(() => checkAccessExtras({ cors: { allowed_origins: ['*', 'https://a.example.com:8443', 'http://localhost:3000/'] }, allowed_users: ['ml_engineer'] }, 'access_control'));
  t.throws(() => checkAccessExtras({ security_headers: { content_security_policy: "default-src 'self'\nX: y" } }, ''), { code: 'VALIDATION_FAILED', details: { field: 'security_headers.content_security_policy' } });
  t.throws(() => checkAccessExtras({ cors: { allowed_origins: ['javascript:alert(1)'] } }, 'access_control'), { code: 'VALIDATION_FAILED', details: { field: 'access_control.cors.allowed_origins.0' } });
  t.throws(() => checkAccessExtras({ cors: { allowed_headers: ['Bad Header'] } }, ''), { code: 'VALIDATION_FAILED', details: { field: 'cors.allowed_headers.0' } });
  t.throws(() => checkAccessExtras({ allowed_users: ['has space'] }, 'access_control'), { code: 'VALIDATION_FAILED', details: { field: 'access_control.allowed_users.0' } });
});
