// Usage statistics, access logs and /metrics end to end: HTTPS requests (with
// secrets in the Authorization header, a cookie and the query string) and a
// raw TCP connection through a real relay and agent; the proxy view's
// usage_statistics and access_logs change, /metrics parses and its counters
// move, everything survives a relay restart on the same data dir, and no
// secret reaches any log.
import t from 'tap';
import net from 'node:net';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { TARGET_HOST, createServer, eventually, startAgent, startRelay, type AgentHandle, type RelayHandle } from '../helpers/cluster.js';
import { httpsHostsOf, startOrigin, webRequest } from '../helpers/web.js';
import { startEcho } from '../helpers/targets.js';

const SECRETS = { bearer: 'sekret-bearer-5a1f9c', cookie: 'cookie-secret-77e0d2', query: 'query-secret-3b8e41', password: 'pw-secret-c0ffee' };

let relay: RelayHandle = await startRelay();
const origin = await startOrigin();
const echo = await startEcho(TARGET_HOST);
const srv = await createServer(relay, { id: 'stats-a', owner: 'sam' });
const yaml = ['mappings:', `  - { internal_port: ${origin.port}, http: true, name: statweb }`, `  - { internal_port: ${echo.port}, description: echo }`].join('\n');
const agent: AgentHandle = await startAgent(relay, srv.token, { yaml });
const hosts = await httpsHostsOf(agent, origin.port);
const metricsKey = () => readFileSync(join(relay.dataDir, 'metrics.key'), 'utf8').trim();

t.teardown(async () => {
  await agent.stop();
  await relay.stop();
  await Promise.all([origin.close(), echo.close()]);
  rmSync(relay.dataDir, { recursive: true, force: true });
});

async function view(): Promise<any> {
  const res = await relay.api('GET', `/v1/servers/${srv.id}/proxy?include_access_logs=true&include_health=true`);
  return res.body.data;
}
const webMapping = (d: any) => d.port_mappings.find((m: any) => m.http);
const echoMapping = (d: any) => d.port_mappings.find((m: any) => !m.http);

/** Parses the Prometheus text format strictly; returns samples by "name{labels}". */
function parseProm(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?(?:[0-9.]+(?:e[+-]?\d+)?|\+Inf|-Inf|NaN))$/;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const m = sample.exec(line);
    if (!m) throw new Error(`not Prometheus text format: ${JSON.stringify(line)}`);
    samples.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  }
  return samples;
}

async function scrape(key?: string): Promise<{ status: number; text: string; type: string | null }> {
  const res = await fetch(`${relay.apiUrl}/metrics`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') };
}

/** Sum of the samples of a metric whose labels contain every given pair. */
function sum(samples: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const [k, v] of samples) {
    if (!k.startsWith(`${name}{`) && k !== name) continue;
    if (Object.entries(labels).every(([l, val]) => k.includes(`${l}="${val}"`))) total += v;
  }
  return total;
}

function echoOnce(port: number, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let got = 0;
    s.on('connect', () => s.end(Buffer.alloc(bytes, 7)));
    s.on('data', (c: Buffer) => (got += c.length));
    s.on('close', () => resolve(got));
    s.on('error', reject);
  });
}

let before: any;

t.test('statistics and access logs change after traffic', async (t) => {
  before = await view();
  t.equal(webMapping(before).usage_statistics.total_requests, 0);
  t.same(before.access_logs, [], 'no requests yet, no access logs');
  const host = `${hosts.other}:${relay.ports.https}`;
  for (let i = 0; i < 5; i++) {
    const r = await webRequest(relay, host, {
      path: `/page/${i}?token=${SECRETS.query}&page=${i}`,
      headers: { authorization: `Bearer ${SECRETS.bearer}`, cookie: `sid=${SECRETS.cookie}`, 'user-agent': 'stats-test/1.0' },
    });
    t.equal(r.status, 200);
  }
  const basic = Buffer.from(`sam:${SECRETS.password}`).toString('base64');
  const posted = await webRequest(relay, host, { method: 'POST', path: '/echo', body: 'x'.repeat(1000), headers: { authorization: `Basic ${basic}` } });
  t.equal(posted.status, 200);
  t.equal(await echoOnce((echoMapping(before) as any).external_port, 4096), 4096, 'raw TCP echo');

  const d = await eventually(async () => {
    const v = await view();
    return echoMapping(v).usage_statistics.bytes_in === 4096 ? v : null;
  }, 5_000);
  const u = webMapping(d).usage_statistics;
  t.equal(u.total_requests, 6, 'six requests counted');
  t.equal(u.unique_visitors, 1, 'one visitor (HyperLogLog estimate, exact at small counts)');
  t.ok(u.avg_response_time_ms > 0, `avg_response_time_ms ${u.avg_response_time_ms}`);
  t.ok(Date.now() - Date.parse(u.last_accessed) < 60_000, 'last_accessed is recent');
  t.ok(u.bytes_in >= 1000, `bytes_in counts the request body (${u.bytes_in})`);
  t.ok(u.bytes_out > 0, `bytes_out counts response bodies (${u.bytes_out})`);
  const e = echoMapping(d).usage_statistics;
  t.equal(e.total_connections, 1, 'raw TCP: one connection');
  t.equal(e.bytes_out, 4096, 'raw TCP: bytes out');
  t.equal(e.open_connections, 0, 'closed again');

  t.equal(d.access_logs.length, 6, 'six access-log entries');
  const last = d.access_logs[0];
  t.same(Object.keys(last).sort(), ['client_ip', 'mapping_id', 'method', 'path', 'response_time_ms', 'status_code', 'timestamp', 'user', 'user_agent'].sort());
  t.equal(last.method, 'POST', 'newest first');
  const get = d.access_logs.find((x: any) => x.path.startsWith('/page/4'));
  t.equal(get.path, '/page/4?token=[redacted]&page=4', 'token in the query string redacted');
  t.equal(get.client_ip, '127.0.0.1');
  t.equal(get.status_code, 200);
  t.equal(get.user_agent, 'stats-test/1.0');
  t.notMatch(JSON.stringify(d), new RegExp(Object.values(SECRETS).join('|')), 'no secret in the API answer');
});

let firstScrape: Map<string, number>;

t.test('/metrics: auth, Prometheus text format, the counters move', async (t) => {
  t.equal((await scrape()).status, 401, 'no key: 401');
  t.equal((await scrape('pak_wrong')).status, 401, 'wrong key: 401');
  t.equal((await scrape(relay.adminKey)).status, 200, 'the admin key works');
  const res = await scrape(metricsKey());
  t.equal(res.status, 200, 'the read-only metrics key works');
  t.match(res.type, /^text\/plain; version=0\.0\.4/);
  const s = parseProm(res.text);
  firstScrape = s;
  const m = (await view()).port_mappings.find((x: any) => x.http).id;
  const e = (await view()).port_mappings.find((x: any) => !x.http).id;
  t.equal(s.get('portico_agents_online'), 1, 'agents online');
  t.ok(s.has('portico_streams_open'), 'streams open');
  t.equal(sum(s, 'portico_http_requests_total', { mapping: m, status_class: '2xx' }), 6, 'requests by status class');
  t.equal(sum(s, 'portico_http_request_duration_seconds_count', { mapping: m }), 6, 'latency histogram count');
  t.ok(sum(s, 'portico_http_request_duration_seconds_bucket', { mapping: m, le: '+Inf' }) === 6, 'histogram +Inf bucket');
  t.equal(sum(s, 'portico_bytes_total', { mapping: e, direction: 'in' }), 4096, 'bytes by mapping and direction (in)');
  t.equal(sum(s, 'portico_bytes_total', { mapping: e, direction: 'out' }), 4096, 'bytes out');
  t.ok(sum(s, 'portico_bytes_total', { mapping: m, direction: 'out' }) > 0);
  t.equal(sum(s, 'portico_connections_total', { mapping: e, kind: 'tcp' }), 1, 'raw TCP connections');
  for (const name of ['portico_blocked_total', 'portico_rate_limited_total', 'portico_mapping_health', 'portico_unhealthy_refused_total']) {
    t.match(res.text, new RegExp(`# TYPE ${name} `), `${name} is exported`);
  }

  // Move them: more requests, one 404 from an unknown host, one more TCP connection.
  for (let i = 0; i < 3; i++) await webRequest(relay, `${hosts.secure}:${relay.ports.https}`, { path: '/more' });
  t.equal((await webRequest(relay, `${'a'.repeat(26)}.secure.localhost:${relay.ports.https}`)).status, 404);
  await echoOnce((echoMapping(await view()) as any).external_port, 100);
  const s2 = parseProm((await scrape(metricsKey())).text);
  t.equal(sum(s2, 'portico_http_requests_total', { mapping: m, status_class: '2xx' }), 9, 'requests counter moved');
  t.ok(sum(s2, 'portico_http_requests_total', { status_class: '4xx' }) >= 1, '404 of an unknown host counted');
  t.equal(sum(s2, 'portico_bytes_total', { mapping: e, direction: 'in' }), 4196, 'bytes counter moved');
  t.equal(sum(s2, 'portico_connections_total', { mapping: e }), 2);
});

t.test('statistics and access logs survive a relay restart', async (t) => {
  const pre = await view();
  const preWeb = webMapping(pre).usage_statistics;
  const { dataDir, ports } = relay;
  // Mark the agent's output before the restart: it may reconnect while startRelay is still waiting for the API.
  const linesBefore = agent.out.lines.length;
  t.equal(await relay.stop(), 0, 'relay stopped cleanly (stats flushed on stop)');
  relay = await startRelay({ dataDir, ports });
  await agent.out.waitFor(/^connected to /, 20_000, linesBefore);
  const post = await eventually(async () => {
    const v = await view();
    return v.proxy_status === 'active' ? v : null;
  }, 20_000);
  const postWeb = webMapping(post).usage_statistics;
  t.equal(postWeb.total_requests, preWeb.total_requests, `total_requests kept (${postWeb.total_requests})`);
  t.equal(postWeb.unique_visitors, preWeb.unique_visitors, 'visitor sketch kept');
  t.equal(postWeb.avg_response_time_ms, preWeb.avg_response_time_ms, 'average kept');
  t.equal(postWeb.last_accessed, preWeb.last_accessed);
  t.equal(postWeb.bytes_out, preWeb.bytes_out);
  t.same(echoMapping(post).usage_statistics.total_connections, 2, 'raw TCP counts kept');
  t.same(post.access_logs, pre.access_logs, 'access logs kept');
  // And counting goes on from there.
  t.equal((await webRequest(relay, `${hosts.secure}:${relay.ports.https}`, { path: '/after' })).status, 200);
  t.equal(webMapping(await view()).usage_statistics.total_requests, preWeb.total_requests + 1);
  t.ok(firstScrape.size > 0);
});

t.test('the logs hold access lines and no secret', async (t) => {
  await new Promise((r) => setTimeout(r, 200));
  const relayLog = readFileSync(relay.logFile, 'utf8');
  const agentLog = readFileSync(agent.logFile, 'utf8');
  const access = relayLog.split('\n').filter((l) => l.includes('"msg":"access"'));
  t.ok(access.length >= 10, `${access.length} pino access lines`);
  const one = JSON.parse(access.find((l) => l.includes('/page/1'))!);
  t.equal(one.path, '/page/1?token=[redacted]&page=1');
  t.equal(one.status_code, 200);
  t.equal(one.method, 'GET');
  t.ok(one.mapping, 'names the mapping');
  t.notOk('authorization' in one || 'cookie' in one || 'headers' in one, 'no headers logged');
  const forbidden = [...Object.values(SECRETS), relay.adminKey, metricsKey(), srv.token, srv.token.split('_').pop()!, hosts.secure.split('.')[0]!];
  for (const [name, text] of [
    ['relay', relayLog],
    ['agent', agentLog],
  ] as const) {
    for (const secret of forbidden) t.notOk(text.includes(secret), `${name} log does not contain ${secret.slice(0, 6)}…`);
  }
});

t.test('open_connections counts HTTPS requests in flight', async (t) => {
  // An HTTPS request in flight (a slow answer, an SSE stream) is an open connection too.
  const host = `${hosts.other}:${relay.ports.https}`;
  const slow = webRequest(relay, host, { path: '/stall?ms=1500' });
  const during = await eventually(async () => {
    const v = webMapping(await view()).usage_statistics;
    return v.open_requests === 1 ? v : null;
  }, 1_400, 50);
  t.equal(during.open_connections, 1, 'open_connections counts the request in flight');
  t.equal((await slow).status, 200);
  const after = webMapping(await eventually(async () => {
    const v = await view();
    return webMapping(v).usage_statistics.open_requests === 0 ? v : null;
  }, 2_000)).usage_statistics;
  t.equal(after.open_connections, 0, 'and not once it is answered');
});
