// Pure pieces of health, replicas and statistics: the HyperLogLog estimate,
// query redaction, the access-log ring, the agent's health state machine and
// probes, and round-robin member selection.
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { HyperLogLog } from '../../relay/stats/hll.js';
import { redactPath, truncateUserAgent } from '../../relay/stats/redact.js';
import { ACCESS_LOG_SIZE, MappingUsage } from '../../relay/stats/usage.js';
import { HealthChecker, probe, type CheckSpec, type ProbeResult } from '../../agent/health/checker.js';
import { HealthRegistry } from '../../relay/health/registry.js';
import { ReplicaGroups } from '../../relay/replicas/groups.js';
import type { HealthStateMsg, MappingMsg } from '../../proto/index.js';
import type { AccessLogEntry } from '../../relay/store/store.js';

t.test('HyperLogLog: near exact when small, within a few percent when large, survives JSON', async (t) => {
  const h = new HyperLogLog();
  t.equal(h.count(), 0);
  for (let i = 0; i < 50; i++) for (let r = 0; r < 3; r++) h.add(`10.0.${i >> 8}.${i & 255}`);
  t.ok(Math.abs(h.count() - 50) <= 1, `50 distinct (each 3 times) -> ${h.count()}`);
  const big = new HyperLogLog();
  for (let i = 0; i < 100_000; i++) big.add(`visitor-${i}`);
  const err = Math.abs(big.count() - 100_000) / 100_000;
  t.ok(err < 0.08, `100,000 distinct -> ${big.count()} (${(err * 100).toFixed(1)} % off; standard error 3.3 %)`);
  const back = HyperLogLog.from(JSON.parse(JSON.stringify(big)));
  t.equal(back.count(), big.count(), 'round-trips through JSON');
  t.equal(HyperLogLog.from({ p: 12, r: 'xx' }).count(), 0, 'a foreign sketch is dropped, not misread');
  t.equal(HyperLogLog.from(null).count(), 0);
});

t.test('redactPath: secret query values go, the rest stays', async (t) => {
  t.equal(redactPath('/a/b'), '/a/b');
  t.equal(redactPath(undefined), '/');
  t.equal(redactPath('/x?token=abc&page=2'), '/x?token=[redacted]&page=2');
  t.equal(redactPath('/x?api_key=1&access_token=2&X-Amz-Signature=3&password=4&q=ok'), '/x?api_key=[redacted]&access_token=[redacted]&X-Amz-Signature=[redacted]&password=[redacted]&q=ok');
  t.equal(redactPath('/cb?code=oauthcode&state=s'), '/cb?code=[redacted]&state=s');
  t.equal(redactPath('/x?%74oken=abc'), '/x?%74oken=[redacted]', 'percent-encoded names are decoded first');
  t.equal(redactPath('/x?flag&sessionid=z'), '/x?flag&sessionid=[redacted]');
  t.equal(redactPath('/' + 'a'.repeat(600)).length, 513, 'long paths are cut');
  t.equal(truncateUserAgent('u'.repeat(300))!.length, 256);
  t.equal(truncateUserAgent(undefined), null);
});

t.test('access-log ring keeps the newest entries, newest first, and round-trips through the store record', async (t) => {
  const u = new MappingUsage('s', 'm');
  const entry = (i: number): AccessLogEntry => ({
    timestamp: new Date(1_700_000_000_000 + i).toISOString(),
    client_ip: '127.0.0.1',
    user: null,
    method: 'GET',
    path: `/${i}`,
    status_code: 200,
    response_time_ms: 1,
    user_agent: null,
  });
  for (let i = 0; i < ACCESS_LOG_SIZE + 30; i++) u.pushLog(entry(i));
  const logs = u.recentLogs();
  t.equal(logs.length, ACCESS_LOG_SIZE);
  t.equal(logs[0]!.path, `/${ACCESS_LOG_SIZE + 29}`, 'newest first');
  t.equal(logs.at(-1)!.path, '/30', 'oldest kept');
  t.same(u.recentLogs(3).map((e) => e.path), [`/${ACCESS_LOG_SIZE + 29}`, `/${ACCESS_LOG_SIZE + 28}`, `/${ACCESS_LOG_SIZE + 27}`]);
  u.totalRequests = 7;
  u.visitors.add('a');
  const back = MappingUsage.fromRecord(u.toRecord(new Date().toISOString()));
  t.same(back.recentLogs(), logs);
  t.equal(back.view().total_requests, 7);
  t.equal(back.view().unique_visitors, 1);
});

t.test('health state machine: unknown -> healthy; unhealthy after `retries` failures; reports on change', async (t) => {
  const results: ProbeResult[] = [];
  let calls = 0;
  const fake = async (): Promise<ProbeResult> => {
    calls++;
    return results.shift() ?? { ok: true, detail: 'ok' };
  };
  const sent: HealthStateMsg[][] = [];
  const hc = new HealthChecker(fake as unknown as typeof probe);
  t.teardown(() => hc.stop());
  hc.setSender((s) => sent.push(s));
  results.push({ ok: true, detail: 'up' }, { ok: false, detail: 'down 1' }, { ok: false, detail: 'down 2' }, { ok: true, detail: 'up again' });
  const m: MappingMsg = { id: 'port_x', internalPort: 1, externalPort: 2, healthCheck: { enabled: true, path: '/h', intervalSeconds: 1, timeoutSeconds: 1, expectedStatus: 200, retries: 2 } };
  hc.update([m], '127.0.0.2');
  const wait = async (n: number) => {
    for (let i = 0; i < 100 && calls < n; i++) await new Promise((r) => setTimeout(r, 50));
  };
  await wait(1);
  await new Promise((r) => setImmediate(r));
  t.equal(hc.snapshot()[0]!.status, 'healthy', 'first success: healthy');
  t.ok(sent.some((s) => s[0]!.status === 'healthy'), 'the change was reported at once');
  await wait(3);
  await new Promise((r) => setImmediate(r));
  const s = hc.snapshot()[0]!;
  t.equal(s.status, 'unhealthy', 'two failures with retries 2: unhealthy');
  t.equal(s.consecutiveFailures, 2);
  t.equal(s.detail, 'down 2');
  await wait(4);
  await new Promise((r) => setImmediate(r));
  t.equal(hc.snapshot()[0]!.status, 'healthy', 'one success: healthy again');
  hc.update([{ ...m, healthCheck: null }], '127.0.0.2');
  t.same(hc.snapshot(), [], 'check removed with the health_check');
});

t.test('probes: HTTP status, wrong status, refused, TCP connect, timeout', async (t) => {
  const server = http.createServer((req, res) => {
    if (req.url === '/slow') return; // never answers
    res.writeHead(req.url === '/ok' ? 200 : 500).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const base = { host: '127.0.0.1', port, timeoutMs: 500, expectedStatus: 200 };
  t.equal((await probe({ ...base, path: '/ok' })).ok, true);
  const wrong = await probe({ ...base, path: '/bad' });
  t.equal(wrong.ok, false);
  t.match(wrong.detail, /500, expected 200/);
  t.equal((await probe({ ...base, path: '/bad', expectedStatus: 500 })).ok, true, 'expected_status is honoured');
  t.equal((await probe({ ...base, path: '' })).ok, true, 'TCP connect');
  const slow = await probe({ ...base, path: '/slow', timeoutMs: 200 });
  t.equal(slow.ok, false);
  t.match(slow.detail, /within 200 ms/);
  const closed = await new Promise<number>((r) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => r(p));
    });
  });
  const refused = await probe({ ...base, port: closed, path: '' });
  t.equal(refused.ok, false);
  t.match(refused.detail, /ECONNREFUSED/);
});

t.test('replica pick: round-robin over eligible members, skipping unhealthy and offline ones', async (t) => {
  // One agent session per member server; each holds its own health results (relay/sessions/registry.ts).
  const sessions = new Map<string, { serverId: string; mappings: { id: string }[]; status: string }>();
  const registry = {
    primary: (id: string) => sessions.get(id),
    passing: (id: string) => sessions.has(id) && sessions.get(id)!.status !== 'unhealthy',
  } as never;
  const mappings = ['a', 'b', 'c'].map((s, i) => ({
    id: `port_${s}`,
    serverId: s,
    internalPort: 8000,
    externalPort: 20000 + i,
    protocol: 'tcp' as const,
    http: true,
    httpsToken: `tok${s}`,
    group: 'web',
    healthCheck: { enabled: true },
    createdAt: `2026-01-0${i + 1}T00:00:00.000Z`,
  }));
  const store = {
    listServers: async () => ['a', 'b', 'c'].map((id) => ({ id, owner: 'team' })),
    listAllMappings: async () => mappings,
  } as never;
  const groups = new ReplicaGroups(store, { domain: 'example.com' } as never, registry);
  await groups.load();
  for (const s of ['a', 'b', 'c']) sessions.set(s, { serverId: s, mappings: [{ id: `port_${s}` }], status: 'unknown' });
  const set = groups.lookupHost('team-web.example.com:443')!;
  t.ok(set, 'group host routed');
  const picks = (n: number) => Array.from({ length: n }, () => groups.pick(set, true)?.member.serverId ?? null);
  t.same(picks(6), ['a', 'b', 'c', 'a', 'b', 'c']);
  sessions.get('b')!.status = 'unhealthy';
  t.same(picks(4), ['a', 'c', 'a', 'c'], 'unhealthy member skipped');
  sessions.delete('c');
  t.same(picks(3), ['a', 'a', 'a'], 'offline member skipped');
  sessions.delete('a');
  t.equal(groups.pick(set, true), null, 'none eligible');
  sessions.get('b')!.status = 'healthy';
  t.same(picks(2), ['b', 'b'], 'recovered member is picked again');
});
