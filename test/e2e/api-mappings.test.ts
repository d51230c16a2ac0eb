// The proxy / port-mapping API end to end: a real `portico relay` and
// `portico agent` (compiled CLI processes), real HTTP, targets on 127.0.0.2.
// Mapping changes must reach the agent live (no restart), open and retarget
// public ports, and leave open connections of other mappings intact.
import t from 'tap';
import { X509Certificate, createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';
import {
  TARGET_HOST,
  createServer,
  eventually,
  freePort,
  startAgent,
  startRelay,
  type AgentHandle,
  type RelayHandle,
  type ServerHandle,
} from '../helpers/cluster.js';
import { refused, startSourceSink, writeRandom, type Target } from '../helpers/targets.js';

const MiB = 1024 * 1024;
const MAX_PER_SERVER = 8;
const RESERVED = [22, 5901, 6006, 6637, 7088, 8888];

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];
interface Res {
  status: number;
  body: any;
}

let relay: RelayHandle;
let alice: ServerHandle; // owner alice, agent running, declares one mapping in agent.yaml
let bob: ServerHandle; // owner bob, no agent
let agent: AgentHandle;
const targets: Target[] = [];
const banners = new Map<string, number>(); // name -> internal port on TARGET_HOST
let declaredPort = 0;

/** A target on TARGET_HOST that greets every connection with `hello from NAME` and closes. */
async function startBanner(name: string): Promise<number> {
  const port = await freePort(TARGET_HOST);
  const server = net.createServer((s) => {
    s.on('error', () => undefined);
    s.end(`hello from ${name}\n`);
  });
  await new Promise<void>((r) => server.listen({ host: TARGET_HOST, port, exclusive: true }, r));
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  targets.push({
    port,
    server,
    accepted: 0,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  });
  banners.set(name, port);
  return port;
}

/** Connects to the relay's public port and resolves with what arrives before close (null on reset/refusal or nothing). */
function readBanner(port: number, timeoutMs = 3_000): Promise<string | null> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let data = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve(data || null);
    }, timeoutMs);
    s.setEncoding('utf8');
    s.on('data', (d: string) => (data += d));
    s.once('error', () => undefined);
    s.once('close', () => {
      clearTimeout(timer);
      resolve(data || null);
    });
  });
}

/** GET https://HOST/ through the relay's HTTPS listener (127.0.0.1), verified against the dev CA. */
function httpsGet(host: string, timeoutMs = 3_000, skipNameCheck = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: relay.ports.https, path: '/', servername: host, headers: { host, accept: 'application/json' }, ca: readFileSync(relay.caPath), agent: false, timeout: timeoutMs, ...(skipNameCheck && { checkServerIdentity: () => undefined }) },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

const api = (method: string, path: string, body?: unknown, key?: string): Promise<Res> => relay.api(method, path, body, key);

function expectError(t: TapTest, res: Res, status: number, code: string, field?: string) {
  t.equal(res.status, status, `HTTP ${status}`);
  t.equal(res.body?.success, false, 'success false');
  t.equal(res.body?.error?.code, code, `code ${code} (${res.body?.error?.message})`);
  t.type(res.body?.error?.message, 'string');
  t.type(res.body?.error?.details, 'object');
  if (field !== undefined) t.equal(res.body?.error?.details?.field, field, `details.field ${field}`);
}

t.before(async () => {
  relay = await startRelay({ extraYaml: `mappings: { max_per_server: ${MAX_PER_SERVER}, reserved_internal_ports: [${RESERVED.join(', ')}] }` });
  alice = await createServer(relay, { id: 'gpu-alice', owner: 'alice' });
  bob = await createServer(relay, { id: 'gpu-bob', owner: 'bob' });
  declaredPort = await startBanner('declared');
  agent = await startAgent(relay, alice.token, {
    yaml: `mappings:\n  - { internal_port: ${declaredPort}, description: "from agent.yaml" }\n`,
  });
});

t.teardown(async () => {
  await agent?.stop();
  await relay?.stop();
  await Promise.all(targets.map((x) => x.close()));
  if (relay) rmSync(relay.dataDir, { recursive: true, force: true, maxRetries: 3 });
});

const P = (id: string) => `/v1/servers/${id}/proxy`;

t.test('every proxy route needs a key', async (t) => {
  for (const [m, p] of [
    ['GET', P(alice.id)],
    ['PUT', P(alice.id)],
    ['POST', `${P(alice.id)}/ports`],
    ['PUT', `${P(alice.id)}/ports/port_x`],
    ['DELETE', `${P(alice.id)}/ports/port_x`],
    ['PUT', `${P(alice.id)}/access`],
  ] as const) {
    expectError(t, await api(m, p, m === 'GET' || m === 'DELETE' ? undefined : {}, 'pak_wrong'), 401, 'UNAUTHORIZED');
  }
});

t.test('GET /proxy: the seed shape, with the agent-declared mapping and honest empty values', async (t) => {
  const res = await api('GET', P(alice.id));
  t.equal(res.status, 200);
  t.equal(res.body.success, true);
  const d = res.body.data;
  t.equal(d.server_id, alice.id);
  t.equal(d.proxy_url, `https://connect01.localhost:${relay.ports.https}`);
  t.equal(d.proxy_status, 'active', 'agent online and proxy enabled');
  t.equal(d.proxy_enabled, true);
  t.same(d.allowed_ips, []);
  t.same(d.ports, alice.ports);
  t.equal(d.port_mappings.length, 1, 'the mapping from agent.yaml is listed');
  const m = d.port_mappings[0];
  t.match(m.id, /^port_[a-z2-7]+$/);
  t.equal(m.internal_port, declaredPort);
  t.equal(m.external_port, alice.ports[0], 'auto-assigned: first port of the block');
  t.equal(m.protocol, 'tcp');
  t.equal(m.description, 'from agent.yaml');
  t.equal(m.source, 'agent');
  t.equal(m.name, null);
  t.equal(m.http, false);
  t.equal(m.url, `tcp://connect01.localhost:${alice.ports[0]}`);
  t.same(m.urls, { raw: `tcp://connect01.localhost:${alice.ports[0]}`, https: [] });
  t.equal(m.status, 'active');
  t.equal(m.health_status, 'unknown', 'no health checks yet: unknown, not healthy');
  t.equal(m.health_check, null);
  t.equal(m.access_control, null);
  t.same(m.usage_statistics, { total_requests: 0, unique_visitors: 0, last_accessed: null, avg_response_time_ms: null, bytes_in: 0, bytes_out: 0, open_connections: 0, open_requests: 0, total_connections: 0 });
  t.ok(Date.parse(m.created_at) && Date.parse(m.updated_at), 'timestamps');
  t.same(d.identity_ports, alice.ports.slice(1), 'the other block ports forward identity');
  t.equal(d.access_control.default_authentication, false, 'nothing configured: defaults');
  t.same(d.access_control.ip_whitelist, []);
  t.equal(d.network_configuration.ssl_termination, 'proxy');
  t.notOk('ssl_certificate' in d, 'ssl info only when asked');
  t.notOk('access_logs' in d, 'access logs only when asked');
  t.equal(res.body.meta.total_port_mappings, 1);
  t.equal(res.body.meta.active_port_mappings, 1);
  t.type(res.body.meta.proxy_version, 'string');
  t.ok(Date.parse(res.body.meta.last_updated), 'meta.last_updated');
  t.equal(await readBanner(alice.ports[0]!), 'hello from declared\n', 'the declared mapping forwards');

  const offline = await api('GET', P(bob.id));
  t.equal(offline.body.data.proxy_status, 'inactive', 'no agent: inactive');
  t.same(offline.body.data.port_mappings, []);
  t.equal(offline.body.meta.total_port_mappings, 0);
  t.equal(offline.body.meta.active_port_mappings, 0);
});

t.test('GET /proxy?include_ssl_info&include_access_logs: the real certificate, no invented logs', async (t) => {
  const res = await api('GET', `${P(alice.id)}?include_ssl_info=true&include_access_logs=true`);
  t.equal(res.status, 200);
  const ssl = res.body.data.ssl_certificate;
  const x = new X509Certificate(readFileSync(join(relay.dataDir, 'relay.crt')));
  t.equal(ssl.issuer, 'Portico dev CA', 'issuer CN of the dev CA');
  t.equal(ssl.valid_from, new Date(x.validFrom).toISOString());
  t.equal(ssl.valid_until, new Date(x.validTo).toISOString());
  t.equal(ssl.fingerprint_sha256, x.fingerprint256);
  t.equal(ssl.status, 'valid');
  t.equal(ssl.source, 'dev');
  t.ok(ssl.subject_alt_names.includes('DNS:*.secure.localhost'));
  t.same(res.body.data.access_logs, []);
  const bare = await api('GET', `${P(alice.id)}?include_ssl_info`);
  t.equal(bare.body.data.ssl_certificate?.issuer, 'Portico dev CA', 'a bare flag counts as true');
  const off = await api('GET', `${P(alice.id)}?include_ssl_info=false`);
  t.notOk('ssl_certificate' in off.body.data);
  expectError(t, await api('GET', `${P(alice.id)}?include_ssl_info=maybe`), 400, 'VALIDATION_FAILED', 'include_ssl_info');
  // Python's requests sends params={'include_ssl_info': True} as "True"; other parameters are ignored.
  const py = await api('GET', `${P(alice.id)}?include_ssl_info=True&include_health=TRUE&_=1732280000`);
  t.equal(py.status, 200);
  t.equal(py.body.data.ssl_certificate?.issuer, 'Portico dev CA', 'True counts as true');
  t.notOk('ssl_certificate' in (await api('GET', `${P(alice.id)}?include_ssl_info=False`)).body.data, 'False as false');
  t.equal((await api('GET', `${P(alice.id)}?bogus=1`)).status, 200, 'an unknown parameter is ignored');
});

let m1 = ''; // api mapping -> banner "one"
let m1Port = 0;

t.test('POST /proxy/ports: live — traffic on the new port within a second, no agent restart', async (t) => {
  const internal = await startBanner('one');
  const linesBefore = agent.out.lines.length;
  const startedAt = Date.now();
  const res = await api('POST', `${P(alice.id)}/ports`, { internal_port: internal, description: 'svc one' });
  t.equal(res.status, 201);
  const d = res.body.data;
  t.equal(d.server_id, alice.id);
  t.equal(d.internal_port, internal);
  t.equal(d.external_port, alice.ports[1], 'auto-assigned: the first free block port');
  t.equal(d.protocol, 'tcp');
  t.equal(d.description, 'svc one');
  t.equal(d.source, 'api');
  t.equal(d.url, `tcp://connect01.localhost:${alice.ports[1]}`);
  t.equal(d.status, 'active');
  m1 = d.id;
  m1Port = d.external_port;
  const got = await eventually(async () => (await readBanner(m1Port, 1_000)) === 'hello from one\n', 1_000, 20).catch(() => false);
  t.ok(got, 'the new mapping carried traffic from 127.0.0.2:internal');
  t.ok(Date.now() - startedAt < 1_500, `within ~1 s (${Date.now() - startedAt} ms)`);
  await agent.out.waitFor(/^mappings updated:/, 5_000, linesBefore);
  await agent.out.waitFor(new RegExp(`:${m1Port} -> ${TARGET_HOST.replace(/\./g, '\\.')}:${internal}\\b`), 5_000, linesBefore);
  t.ok(
    agent.out.lines.slice(linesBefore).includes(`tcp  connect01.localhost:${m1Port} -> ${TARGET_HOST}:${internal}`),
    "the agent's line has SPEC's exact shape (no description after it)",
  );
  t.pass('the agent printed "mappings updated:" and the new endpoint');
  t.equal(agent.child.exitCode, null, 'the agent kept running');
  t.notOk(agent.out.lines.slice(linesBefore).some((l) => /^connected to /.test(l)), 'no reconnect');
  const view = await api('GET', P(alice.id));
  t.equal(view.body.meta.total_port_mappings, 2);
  t.notOk(view.body.data.identity_ports.includes(m1Port));
});

t.test('POST /proxy/ports: http mapping with a name gets HTTPS URLs; health and access stored', async (t) => {
  const internal = await startBanner('web');
  const res = await api('POST', `${P(alice.id)}/ports`, {
    internal_port: internal,
    external_port: alice.ports[5],
    description: 'Jupyter-like web',
    name: 'web',
    http: true,
    health_check: { enabled: true, path: '/lab', interval_seconds: 30 },
    access_control: { authentication_required: true, allowed_users: ['ml_engineer'], ip_whitelist: ['203.0.113.7/24', '2001:DB8::/32', '127.0.0.1'], rate_limit: { requests_per_minute: 100, burst_size: 20 } },
  });
  t.equal(res.status, 201);
  const d = res.body.data;
  t.equal(d.external_port, alice.ports[5], 'the explicit external port');
  t.equal(d.http, true);
  t.equal(d.name, 'web');
  t.equal(d.url, `https://alice-web.localhost:${relay.ports.https}`, 'url = the named https://{user}-{name} address');
  t.match(d.urls.https[0], new RegExp(`^https://[a-z2-7]{26}\\.secure\\.localhost:${relay.ports.https}$`), 'the token URL first in urls.https');
  t.same(d.urls.https, [d.urls.https[0], d.url]);
  t.equal(d.urls.raw, `tcp://connect01.localhost:${alice.ports[5]}`);
  t.same(d.health_check, { enabled: true, path: '/lab', interval_seconds: 30, timeout_seconds: 10, expected_status: 200, retries: 3 }, 'defaults filled');
  t.same(d.access_control.ip_whitelist, ['203.0.113.7/24', '2001:db8::/32', '127.0.0.1'], 'CIDRs canonicalised');
  t.same(d.access_control.rate_limit, { requests_per_minute: 100, burst_size: 20 });
  t.equal(d.health_status, 'unknown');
  t.equal(await eventually(() => readBanner(alice.ports[5]!, 1_000), 2_000), 'hello from web\n', 'raw port forwards too (127.0.0.1 is in its ip_whitelist, which raw ports enforce)');

  const withHealth = await api('GET', `${P(alice.id)}?include_health=true`);
  const web = withHealth.body.data.port_mappings.find((m: any) => m.id === d.id);
  t.equal(web.health_check.last_check, null, 'include_health: runtime state, honestly empty');
  t.equal(web.health_check.consecutive_failures, 0);
  t.equal(web.health_status, 'unknown');
});

t.test('POST /proxy/ports errors: every code with its status and details', async (t) => {
  const ports = `${P(alice.id)}/ports`;
  const reserved = await api('POST', ports, { internal_port: 8888 });
  expectError(t, reserved, 409, 'PORT_RESERVED', 'internal_port');
  t.same(reserved.body.error.details.reserved_ports, RESERVED);

  const outside = await api('POST', ports, { internal_port: 9000, external_port: bob.ports[0] });
  expectError(t, outside, 409, 'PORT_OUT_OF_BLOCK', 'external_port');
  t.same(outside.body.error.details.allowed_ports, alice.ports);

  const taken = await api('POST', ports, { internal_port: 9000, external_port: m1Port });
  expectError(t, taken, 409, 'PORT_ALREADY_MAPPED', 'external_port');
  t.equal(taken.body.error.details.existing_mapping_id, m1);
  t.equal(taken.body.error.details.existing_description, 'svc one');
  t.match(taken.body.error.details.suggestion, /external port \d+/);

  // The seed's meaning: one mapping per internal port (and protocol).
  const again = await api('POST', ports, { internal_port: banners.get('one') });
  expectError(t, again, 409, 'PORT_ALREADY_MAPPED', 'internal_port');
  t.match(again.body.error.message, new RegExp(`^Internal port ${banners.get('one')} is already mapped`));
  t.equal(again.body.error.details.internal_port, banners.get('one'));
  t.equal(again.body.error.details.existing_mapping_id, m1);
  t.equal(again.body.error.details.existing_description, 'svc one');

  expectError(t, await api('POST', ports, { internal_port: 9000, name: 'web' }), 409, 'NAME_TAKEN', 'name');
  expectError(t, await api('POST', `${P(bob.id)}/ports`, { internal_port: 9000, name: 'web' }), 409, 'NAME_TAKEN', 'name');
  expectError(t, await api('POST', ports, { internal_port: 9000, protocol: 'udp' }), 409, 'UDP_NOT_ENABLED', 'protocol');

  expectError(t, await api('POST', ports, {}), 400, 'VALIDATION_FAILED', 'internal_port');
  expectError(t, await api('POST', ports, { internal_port: 70000 }), 400, 'VALIDATION_FAILED', 'internal_port');
  expectError(t, await api('POST', ports, { internal_port: 80.5 }), 400, 'VALIDATION_FAILED', 'internal_port');
  expectError(t, await api('POST', ports, { internal_port: 9000, protocol: 'sctp' }), 400, 'VALIDATION_FAILED', 'protocol');
  expectError(t, await api('POST', ports, { internal_port: 9000, colour: 'red' }), 400, 'VALIDATION_FAILED', 'colour');
  expectError(t, await api('POST', ports, { internal_port: 9000, name: 'Bad_Name' }), 400, 'VALIDATION_FAILED', 'name');
  expectError(t, await api('POST', ports, { internal_port: 9000, protocol: 'udp', http: true }), 400, 'VALIDATION_FAILED');
  expectError(t, await api('POST', ports, { internal_port: 9000, custom_domain: 'api.example.org' }), 400, 'VALIDATION_FAILED', 'custom_domain');
  const plain = await api('POST', ports, { internal_port: 9000, ssl_redirect: false });
  expectError(t, plain, 400, 'VALIDATION_FAILED', 'ssl_redirect');
  t.match(plain.body.error.message, /HTTPS only/);
  t.equal((await api('PUT', `${ports}/${m1}`, { ssl_redirect: true })).status, 200, "the seed's ssl_redirect: true is what the relay does anyway");
  expectError(
    t,
    await api('POST', ports, { internal_port: 9000, health_check: { interval_seconds: 5, timeout_seconds: 10 } }),
    400,
    'VALIDATION_FAILED',
    'health_check.timeout_seconds',
  );
  expectError(t, await api('POST', ports, { internal_port: 9000, health_check: { path: 'no-slash' } }), 400, 'VALIDATION_FAILED', 'health_check.path');
  expectError(t, await api('POST', ports, { internal_port: 9000, health_check: { every: 3 } }), 400, 'VALIDATION_FAILED', 'health_check.every');
  expectError(
    t,
    await api('POST', ports, { internal_port: 9000, access_control: { ip_whitelist: ['10.0.0.0/8', '300.1.1.1'] } }),
    400,
    'VALIDATION_FAILED',
    'access_control.ip_whitelist.1',
  );
  expectError(t, await api('POST', ports, { internal_port: 9000, access_control: { blocked_ips: ['10.0.0.0/33'] } }), 400, 'VALIDATION_FAILED', 'access_control.blocked_ips.0');
  expectError(t, await api('POST', ports, { internal_port: 9000, access_control: { rate_limit: { burst_size: 3 } } }), 400, 'VALIDATION_FAILED');

  expectError(t, await api('POST', '/v1/servers/no-such-server/proxy/ports', { internal_port: 9000 }), 404, 'NOT_FOUND');
  const after = await api('GET', P(alice.id));
  t.equal(after.body.meta.total_port_mappings, 3, 'no failed call created anything');
});

t.test('MAPPING_LIMIT_REACHED at mappings.max_per_server (422)', async (t) => {
  const ids: string[] = [];
  for (let i = 0; i < MAX_PER_SERVER; i++) {
    const res = await api('POST', `${P(bob.id)}/ports`, { internal_port: 9100 + i, description: `n${i}` });
    t.equal(res.status, 201, `mapping ${i + 1} of ${MAX_PER_SERVER}`);
    ids.push(res.body.data.id);
  }
  const over = await api('POST', `${P(bob.id)}/ports`, { internal_port: 9200 });
  expectError(t, over, 422, 'MAPPING_LIMIT_REACHED');
  t.equal(over.body.error.details.limit, MAX_PER_SERVER);
  for (const id of ids) t.equal((await api('DELETE', `${P(bob.id)}/ports/${id}`)).status, 200);
});

t.test('PUT /proxy/ports/{id}: partial update, re-checked, applied live', async (t) => {
  const url = `${P(alice.id)}/ports/${m1}`;
  const res = await api('PUT', url, {
    description: 'Updated svc one',
    health_check: { enabled: true, path: '/lab/tree', interval_seconds: 15, timeout_seconds: 8 },
    access_control: { authentication_required: true, allowed_users: ['ml_engineer', 'researcher'], rate_limit: { requests_per_minute: 150, burst_size: 30 } },
  });
  t.equal(res.status, 200);
  const d = res.body.data;
  t.equal(d.id, m1);
  t.equal(d.description, 'Updated svc one');
  t.equal(d.internal_port, banners.get('one'), 'unchanged fields kept');
  t.equal(d.external_port, m1Port);
  t.same(d.health_check, { enabled: true, path: '/lab/tree', interval_seconds: 15, timeout_seconds: 8, expected_status: 200, retries: 3 });
  t.same(d.access_control.allowed_users, ['ml_engineer', 'researcher']);
  t.ok(Date.parse(d.updated_at) >= Date.parse(d.created_at));

  t.equal((await api('PUT', url, { external_port: m1Port, name: null })).status, 200, 'its own port and no name: no conflict with itself');
  const clash = await api('PUT', url, { external_port: alice.ports[5] });
  expectError(t, clash, 409, 'PORT_ALREADY_MAPPED', 'external_port');
  expectError(t, await api('PUT', url, { name: 'web' }), 409, 'NAME_TAKEN', 'name');
  expectError(t, await api('PUT', url, { internal_port: 22 }), 409, 'PORT_RESERVED', 'internal_port');
  expectError(t, await api('PUT', url, { external_port: 1 }), 409, 'PORT_OUT_OF_BLOCK', 'external_port');
  expectError(t, await api('PUT', url, { protocol: 'udp' }), 409, 'UDP_NOT_ENABLED', 'protocol');
  expectError(t, await api('PUT', url, {}), 400, 'VALIDATION_FAILED');
  expectError(t, await api('PUT', url, { health_check: { retries: 99 } }), 400, 'VALIDATION_FAILED', 'health_check.retries');
  expectError(t, await api('PUT', url, { custom_domain: 'x.example.org' }), 400, 'VALIDATION_FAILED', 'custom_domain');
  expectError(t, await api('PUT', `${P(alice.id)}/ports/port_nothere`, { description: 'x' }), 404, 'NOT_FOUND');
  expectError(t, await api('PUT', `${P(bob.id)}/ports/${m1}`, { description: 'x' }), 404, 'NOT_FOUND', undefined);

  // Retarget live: same public port, a different internal service.
  const two = await startBanner('two');
  const linesBefore = agent.out.lines.length;
  const moved = await api('PUT', url, { internal_port: two });
  t.equal(moved.status, 200);
  t.equal(moved.body.data.external_port, m1Port);
  const got = await eventually(async () => (await readBanner(m1Port, 1_000)) === 'hello from two\n', 1_000, 20).catch(() => false);
  t.ok(got, 'the public port now reaches the new internal port within a second');
  await agent.out.waitFor(/^mappings updated:/, 5_000, linesBefore);

  const cleared = await api('PUT', url, { health_check: null, access_control: null });
  t.equal(cleared.body.data.health_check, null, 'null removes the health check');
  t.equal(cleared.body.data.access_control, null);
});

t.test('agent-declared mappings: description/health/access editable, ports are agent.yaml’s, not deletable', async (t) => {
  const list = await api('GET', P(alice.id));
  const declared = list.body.data.port_mappings.find((m: any) => m.source === 'agent');
  const url = `${P(alice.id)}/ports/${declared.id}`;
  const res = await api('PUT', url, { description: 'described by the operator', health_check: { path: '/' } });
  t.equal(res.status, 200);
  t.equal(res.body.data.description, 'described by the operator');
  t.equal(res.body.data.source, 'agent');
  t.equal(res.body.data.health_check.path, '/');
  t.equal((await api('PUT', url, { internal_port: declared.internal_port, description: 'same port is fine' })).status, 200);
  const port = await api('PUT', url, { internal_port: 9999 });
  expectError(t, port, 400, 'VALIDATION_FAILED', 'internal_port');
  t.match(port.body.error.message, /agent\.yaml/);
  expectError(t, await api('PUT', url, { http: true }), 400, 'VALIDATION_FAILED', 'http');
  const del = await api('DELETE', url);
  expectError(t, del, 409, 'CONFLICT');
  t.equal(del.body.error.details.source, 'agent');
  t.equal(await readBanner(alice.ports[0]!), 'hello from declared\n', 'still forwarding');
});

t.test('DELETE /proxy/ports/{id}: live — the port stops reaching the service', async (t) => {
  t.equal(await readBanner(m1Port), 'hello from two\n');
  const linesBefore = agent.out.lines.length;
  const res = await api('DELETE', `${P(alice.id)}/ports/${m1}`);
  t.equal(res.status, 200);
  t.same(res.body.data, { server_id: alice.id, id: m1, deleted: true });
  // The public port falls back to identity (internal = public), where nothing listens: the relay resets the client.
  t.ok(await eventually(() => refused('127.0.0.1', m1Port, 1_000), 1_000, 20), 'the port refuses connections');
  t.equal(await readBanner(m1Port), null, 'no byte from the old service');
  await agent.out.waitFor(/^mappings updated:/, 5_000, linesBefore);
  expectError(t, await api('DELETE', `${P(alice.id)}/ports/${m1}`), 404, 'NOT_FOUND');
  const view = await api('GET', P(alice.id));
  t.notOk(view.body.data.port_mappings.some((m: any) => m.id === m1));
  t.ok(view.body.data.identity_ports.includes(m1Port), 'back to identity forwarding');
});

t.test('a 64 MiB transfer on one mapping stays intact while other mappings are added, changed and removed', async (t) => {
  const bulkInternal = await freePort(TARGET_HOST);
  let serverSide!: { received: number; receivedSha: string; sent: number; sentSha: string };
  let serverFinished!: () => void;
  const serverDone = new Promise<void>((res) => (serverFinished = res));
  targets.push(
    await startSourceSink(TARGET_HOST, bulkInternal, 64 * MiB, (r) => {
      serverSide = r;
      serverFinished();
    }),
  );
  const bulk = await api('POST', `${P(alice.id)}/ports`, { internal_port: bulkInternal, description: 'bulk' });
  t.equal(bulk.status, 201);
  const bulkPort = bulk.body.data.external_port;

  const client = await new Promise<{ sent: number; sentSha: string; received: number; receivedSha: string; changes: number }>((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: bulkPort, allowHalfOpen: true });
    const h = createHash('sha256');
    let received = 0;
    let sentInfo: { sent: number; sentSha: string } | null = null;
    let ended = false;
    let changes = 0;
    let churned = false;
    const done = () => {
      if (ended && sentInfo) {
        s.destroy();
        resolve({ ...sentInfo, received, receivedSha: h.digest('hex'), changes });
      }
    };
    s.on('data', (c: Buffer) => {
      received += c.length;
      h.update(c);
      if (!churned && received > 4 * MiB) {
        churned = true;
        // Mid-transfer: pause reading, churn the other mappings, then go on.
        s.pause();
        void (async () => {
          const three = await startBanner('three');
          const add = await api('POST', `${P(alice.id)}/ports`, { internal_port: three, description: 'churn' });
          if (add.status === 201) changes++;
          const upd = await api('PUT', `${P(alice.id)}/ports/${add.body.data.id}`, { description: 'churned', internal_port: banners.get('one') });
          if (upd.status === 200) changes++;
          const del = await api('DELETE', `${P(alice.id)}/ports/${add.body.data.id}`);
          if (del.status === 200) changes++;
          await new Promise((r) => setTimeout(r, 200));
          s.resume();
        })().catch(reject);
      }
    });
    s.once('end', () => {
      ended = true;
      done();
    });
    s.once('error', reject);
    s.once('connect', () => {
      void writeRandom(s, 64 * MiB).then((info) => {
        sentInfo = info;
        s.end();
        done();
      });
    });
  });
  await serverDone;
  t.equal(client.changes, 3, 'add, update and delete happened mid-transfer');
  t.equal(client.sent, 64 * MiB);
  t.equal(serverSide.received, 64 * MiB, 'target received 64 MiB');
  t.equal(serverSide.receivedSha, client.sentSha, 'client -> target sha256 equal');
  t.equal(client.received, 64 * MiB, 'client received 64 MiB');
  t.equal(client.receivedSha, serverSide.sentSha, 'target -> client sha256 equal');
  t.equal((await api('DELETE', `${P(alice.id)}/ports/${bulk.body.data.id}`)).status, 200);
});

t.test('PUT /proxy {enabled, allowedIps}: stored and returned in the seed shape', async (t) => {
  const res = await api('PUT', P(alice.id), { enabled: false, allowedIps: ['203.0.113.0/24', '198.51.100.7', '::1'] });
  t.equal(res.status, 200);
  t.same(res.body.data, {
    server_id: alice.id,
    proxyUrl: `https://connect01.localhost:${relay.ports.https}`,
    enabled: false,
    allowedIps: ['203.0.113.0/24', '198.51.100.7', '::1'],
  });
  const view = await api('GET', P(alice.id));
  t.equal(view.body.data.proxy_status, 'disabled');
  t.same(view.body.data.allowed_ips, ['203.0.113.0/24', '198.51.100.7', '::1']);
  const on = await api('PUT', P(alice.id), { enabled: true });
  t.equal(on.body.data.enabled, true);
  t.same(on.body.data.allowedIps, ['203.0.113.0/24', '198.51.100.7', '::1'], 'a partial PUT keeps the allowlist');
  expectError(t, await api('PUT', P(alice.id), { allowedIps: ['10.0.0.0/8', 'example.com'] }), 400, 'VALIDATION_FAILED', 'allowedIps.1');
  expectError(t, await api('PUT', P(alice.id), { allowedIps: ['fe80::1%eth0'] }), 400, 'VALIDATION_FAILED', 'allowedIps.0');
  expectError(t, await api('PUT', P(alice.id), { enabled: 'yes' }), 400, 'VALIDATION_FAILED', 'enabled');
  expectError(t, await api('PUT', P(alice.id), {}), 400, 'VALIDATION_FAILED');
  expectError(t, await api('PUT', P('nope'), { enabled: true }), 404, 'NOT_FOUND');
  t.same((await api('PUT', P(alice.id), { allowedIps: [] })).body.data.allowedIps, [], 'cleared');
});

t.test('HTTPS routes of http mappings appear and disappear live; PUT /proxy enabled:false turns them off', async (t) => {
  const internal = await freePort(TARGET_HOST);
  const origin = http.createServer((_req, res) => res.end('hello over https'));
  await new Promise<void>((r) => origin.listen(internal, TARGET_HOST, r));
  t.teardown(() => new Promise<void>((r) => origin.close(() => r())));
  const created = await api('POST', `${P(alice.id)}/ports`, { internal_port: internal, http: true, name: 'live-web' });
  t.equal(created.status, 201);
  const [secure, named] = created.body.data.urls.https.map((u: string) => new URL(u).hostname);
  const first = await eventually(async () => {
    const r = await httpsGet(secure);
    return r.status === 200 ? r : null;
  }, 1_000, 20);
  t.equal(first!.body, 'hello over https', 'the token host serves within a second');
  // Node refuses the dev cert's two-label wildcard *.localhost for alice-live-web.localhost (see report); the chain is still verified.
  t.equal((await httpsGet(named, 3_000, true)).body, 'hello over https', 'the {owner}-{name} host too');

  t.equal((await api('PUT', P(alice.id), { enabled: false })).status, 200);
  const off = await eventually(async () => {
    const r = await httpsGet(secure);
    return r.status !== 200 ? r : null;
  }, 2_000, 20);
  t.equal(off!.status, 404, 'proxy turned off: the host answers 404');
  t.equal((await api('PUT', P(alice.id), { enabled: true })).status, 200);
  t.equal((await eventually(async () => ((await httpsGet(secure)).status === 200 ? true : null), 2_000, 20)), true, 'back on');

  t.equal((await api('DELETE', `${P(alice.id)}/ports/${created.body.data.id}`)).status, 200);
  const gone = await eventually(async () => {
    const r = await httpsGet(secure);
    return r.status === 404 ? r : null;
  }, 2_000, 20);
  t.equal(gone!.status, 404, 'deleted: unknown host');
});

t.test('PUT /proxy/access: the seed document validated, stored, returned', async (t) => {
  const doc = {
    default_authentication: true,
    session_timeout_minutes: 240,
    max_concurrent_sessions: 20,
    ip_whitelist: ['203.0.113.0/24', '198.51.100.0/24'],
    blocked_ips: ['192.0.2.66'],
    rate_limiting: { global_limit: { requests_per_minute: 2000, burst_size: 500 }, per_user_limit: { requests_per_minute: 300, burst_size: 100 } },
    security_headers: { hsts_enabled: true, content_security_policy: 'default-src self; script-src self unsafe-inline', x_frame_options: 'SAMEORIGIN' },
    cors: { enabled: true, allowed_origins: ['https://app.example.com'], allowed_methods: ['GET', 'POST'], allowed_headers: ['Content-Type'] },
    compression: { enabled: true, algorithms: ['gzip', 'br'] },
  };
  const res = await api('PUT', `${P(alice.id)}/access`, doc);
  t.equal(res.status, 200);
  t.equal(res.body.data.server_id, alice.id);
  t.same(res.body.data.access_control, doc);
  const view = await api('GET', P(alice.id));
  t.same(view.body.data.access_control, doc, 'GET /proxy returns the stored document');
  t.same(view.body.data.network_configuration.compression, doc.compression);

  const partial = await api('PUT', `${P(alice.id)}/access`, { default_authentication: false });
  t.equal(partial.body.data.access_control.default_authentication, false);
  t.same(partial.body.data.access_control.ip_whitelist, [], 'PUT replaces the document; unset keys read as their defaults');

  expectError(t, await api('PUT', `${P(alice.id)}/access`, { security_headers: { x_frame_options: 'ALLOWALL' } }), 400, 'VALIDATION_FAILED', 'security_headers.x_frame_options');
  expectError(t, await api('PUT', `${P(alice.id)}/access`, { blocked_ips: ['1.2.3'] }), 400, 'VALIDATION_FAILED', 'blocked_ips.0');
  expectError(t, await api('PUT', `${P(alice.id)}/access`, { compression: { algorithms: ['zstd'] } }), 400, 'VALIDATION_FAILED', 'compression.algorithms.0');
  expectError(t, await api('PUT', `${P(alice.id)}/access`, { session_timeout_minutes: 0 }), 400, 'VALIDATION_FAILED', 'session_timeout_minutes');
  expectError(t, await api('PUT', `${P(alice.id)}/access`, { firewall: true }), 400, 'VALIDATION_FAILED', 'firewall');
  expectError(t, await api('PUT', `${P('nope')}/access`, {}), 404, 'NOT_FOUND');
});

t.test('/v1/clusters/{id}/proxy… is an alias (answers with cluster_id)', async (t) => {
  const C = `/v1/clusters/${alice.id}/proxy`;
  const get = await api('GET', C);
  t.equal(get.status, 200);
  t.equal(get.body.data.cluster_id, alice.id);
  t.notOk('server_id' in get.body.data);
  const internal = await startBanner('alias');
  const created = await api('POST', `${C}/ports`, { internal_port: internal, description: 'via clusters' });
  t.equal(created.status, 201);
  t.equal(created.body.data.cluster_id, alice.id);
  const port = created.body.data.external_port;
  t.equal(await eventually(() => readBanner(port, 1_000), 2_000), 'hello from alias\n', 'live through the alias too');
  const upd = await api('PUT', `${C}/ports/${created.body.data.id}`, { description: 'renamed via clusters' });
  t.equal(upd.body.data.description, 'renamed via clusters');
  t.equal((await api('PUT', C, { enabled: true })).body.data.cluster_id, alice.id);
  t.equal((await api('PUT', `${C}/access`, {})).body.data.cluster_id, alice.id);
  const seen = await api('GET', P(alice.id));
  t.ok(seen.body.data.port_mappings.some((m: any) => m.id === created.body.data.id), 'same data under /v1/servers');
  expectError(t, await api('POST', `${C}/ports`, { internal_port: 8888 }), 409, 'PORT_RESERVED');
  const del = await api('DELETE', `${C}/ports/${created.body.data.id}`);
  t.same(del.body.data, { cluster_id: alice.id, id: created.body.data.id, deleted: true });
});

t.test("owner-scoped keys: another owner's server is 404 on every proxy route", async (t) => {
  const made = await api('POST', '/v1/keys', { owner: 'bob' });
  t.equal(made.status, 201);
  const bobKey = made.body.data.key as string;
  const list = await api('GET', P(alice.id));
  const anyMapping = list.body.data.port_mappings[0].id;
  for (const base of [P(alice.id), `/v1/clusters/${alice.id}/proxy`]) {
    expectError(t, await api('GET', base, undefined, bobKey), 404, 'NOT_FOUND');
    expectError(t, await api('PUT', base, { enabled: false }, bobKey), 404, 'NOT_FOUND');
    expectError(t, await api('POST', `${base}/ports`, { internal_port: 9000 }, bobKey), 404, 'NOT_FOUND');
    expectError(t, await api('PUT', `${base}/ports/${anyMapping}`, { description: 'x' }, bobKey), 404, 'NOT_FOUND');
    expectError(t, await api('DELETE', `${base}/ports/${anyMapping}`, undefined, bobKey), 404, 'NOT_FOUND');
    expectError(t, await api('PUT', `${base}/access`, {}, bobKey), 404, 'NOT_FOUND');
  }
  const unknown = await api('GET', P('no-such-server'), undefined, bobKey);
  t.same(unknown.body.error.code, 'NOT_FOUND');
  t.equal((await api('GET', P(alice.id))).body.data.proxy_enabled, true, 'nothing changed');
  t.equal((await api('GET', P(alice.id))).body.meta.total_port_mappings, list.body.meta.total_port_mappings);

  const own = await api('POST', `${P(bob.id)}/ports`, { internal_port: 9300 }, bobKey);
  t.equal(own.status, 201, 'bob manages his own server');
  t.equal((await api('GET', P(bob.id), undefined, bobKey)).status, 200);
  t.equal((await api('DELETE', `${P(bob.id)}/ports/${own.body.data.id}`, undefined, bobKey)).status, 200);
});

t.test('UDP mappings once UDP is on', async (t) => {
  t.equal((await api('PUT', `/v1/servers/${alice.id}/udp`, { enabled: true })).status, 200);
  const res = await api('POST', `${P(alice.id)}/ports`, { internal_port: 5353, protocol: 'udp', external_port: alice.ports[0] });
  t.equal(res.status, 201, 'the tcp mapping on the same external port does not clash with udp');
  t.equal(res.body.data.url, `udp://connect01.localhost:${alice.ports[0]}`);
  t.equal(res.body.data.status, 'active');
  // UDP off keeps the mapping (disabled, its port closed); on again restores it.
  const off = await api('PUT', `/v1/servers/${alice.id}/udp`, { enabled: false });
  t.equal(off.status, 200, 'UDP can be turned off with udp mappings in place');
  t.equal(off.body.data.udp, false);
  const kept = (await api('GET', P(alice.id))).body.data.port_mappings.find((m: any) => m.id === res.body.data.id);
  t.equal(kept?.status, 'disabled', 'the udp mapping is kept, disabled');
  t.equal((await api('PUT', `/v1/servers/${alice.id}/udp`, { enabled: true })).status, 200);
  const back = (await api('GET', P(alice.id))).body.data.port_mappings.find((m: any) => m.id === res.body.data.id);
  t.equal(back?.status, 'active', 'and active again when UDP is back on');
  t.equal((await api('DELETE', `${P(alice.id)}/ports/${res.body.data.id}`)).status, 200);
  t.equal((await api('PUT', `/v1/servers/${alice.id}/udp`, { enabled: false })).status, 200);
});

t.test('concurrent creates never share an external port', async (t) => {
  const results = await Promise.all(Array.from({ length: 5 }, (_, i) => api('POST', `${P(bob.id)}/ports`, { internal_port: 9400 + i })));
  const ok = results.filter((r) => r.status === 201);
  t.equal(ok.length, 5);
  const ports = new Set(ok.map((r) => r.body.data.external_port));
  t.equal(ports.size, 5, 'five different external ports');
  for (const r of ok) await api('DELETE', `${P(bob.id)}/ports/${r.body.data.id}`);
});

t.test('HTTPS host names are one owner\'s: names, server ids and groups that would give another owner\'s host are refused (NAME_TAKEN)', async (t) => {
  // Owner "acme" can spell hosts of owner "acme-corp": {owner}-{name}, {owner}-{server}-{port} and {owner}-{group} all join with dashes.
  const made: string[] = [];
  t.teardown(async () => {
    for (const id of made) await api('DELETE', `/v1/servers/${id}`);
  });
  const mk = async (id: string, owner: string) => {
    const r = await api('POST', '/v1/servers', { id, owner, ports: 10 });
    t.equal(r.status, 201, `server ${id} of ${owner}`);
    made.push(id);
  };
  await mk('hx-evil', 'acme');
  await mk('hx-gpu1', 'acme-corp');
  await mk('corp-hx-gpu1', 'acme');

  // Named: acme's "corp-jupyter" holds acme-corp-jupyter; acme-corp's "jupyter" would be the same host.
  const first = await api('POST', `${P('hx-evil')}/ports`, { internal_port: 9501, http: true, name: 'corp-jupyter' });
  t.equal(first.status, 201, 'the first holder gets the host');
  t.match(first.body.data.url, /^https:\/\/acme-corp-jupyter\.localhost/);
  const second = await api('POST', `${P('hx-gpu1')}/ports`, { internal_port: 9501, http: true, name: 'jupyter' });
  expectError(t, second, 409, 'NAME_TAKEN', 'name');
  t.match(second.body.error.message, /HTTPS host acme-corp-jupyter\.localhost is already in use/);

  // Unnamed: acme's server corp-hx-gpu1 port 9502 and acme-corp's server hx-gpu1 port 9502 spell one host.
  t.equal((await api('POST', `${P('corp-hx-gpu1')}/ports`, { internal_port: 9502, http: true })).status, 201);
  expectError(t, await api('POST', `${P('hx-gpu1')}/ports`, { internal_port: 9502, http: true }), 409, 'NAME_TAKEN', 'internal_port');
  // A name that spells another mapping's unnamed host is refused too.
  expectError(t, await api('POST', `${P('hx-gpu1')}/ports`, { internal_port: 9503, http: true, name: 'hx-gpu1-9502' }), 409, 'NAME_TAKEN', 'name');

  // Groups: acme-corp's group "web" holds acme-corp-web; acme's group "corp-web" would take it.
  const victim = await api('POST', `${P('hx-gpu1')}/ports`, { internal_port: 9504, http: true, group: 'web' });
  t.equal(victim.status, 201, 'a group host for acme-corp');
  const thief = await api('POST', `${P('hx-evil')}/ports`, { internal_port: 9504, http: true });
  t.equal(thief.status, 201);
  expectError(t, await api('PUT', `${P('hx-evil')}/ports/${thief.body.data.id}`, { group: 'corp-web' }), 409, 'NAME_TAKEN', 'group');
  expectError(t, await api('PUT', `${P('hx-evil')}/ports/${thief.body.data.id}`, { name: 'corp-web' }), 409, 'NAME_TAKEN', 'name');
  // The same owner's other members share their group's host.
  const member = await api('POST', `${P('hx-gpu1')}/ports`, { internal_port: 9505, http: true, group: 'web' });
  t.equal(member.status, 201, 'a second member of acme-corp\'s group');
  // A mapping whose own name is its group's name would hide the group host.
  expectError(t, await api('POST', `${P('hx-gpu1')}/ports`, { internal_port: 9506, http: true, name: 'blue', group: 'blue' }), 409, 'NAME_TAKEN', 'group');
  // Updating other fields of a mapping keeps its host (its own claim is not a clash).
  t.equal((await api('PUT', `${P('hx-evil')}/ports/${first.body.data.id}`, { description: 'renamed nothing' })).status, 200);
});

t.test('DELETE /v1/servers frees the block at once: a full pool takes a new server right after a delete', async (t) => {
  const made: string[] = [];
  let refused: Res | undefined;
  for (let i = 0; i < 20 && refused === undefined; i++) {
    const res = await api('POST', '/v1/servers', { id: `fill-${i}`, ports: 40 });
    if (res.status === 201) made.push(res.body.data.id);
    else refused = res;
  }
  t.ok(made.length > 0, `${made.length} servers of 40 ports filled the pool`);
  expectError(t, refused!, 503, 'POOL_EXHAUSTED');
  const freed = await api('GET', `/v1/servers/${made[0]}`);
  t.equal((await api('DELETE', `/v1/servers/${made[0]}`)).status, 200);
  const again = await api('POST', '/v1/servers', { id: 'fill-again', ports: 40 });
  t.equal(again.status, 201, `created at once (${again.body?.error?.message ?? 'ok'})`);
  t.same(again.body.data.ports, freed.body.data.ports, 'it got the freed block');
  for (const id of [...made.slice(1), 'fill-again']) t.equal((await api('DELETE', `/v1/servers/${id}`)).status, 200);
});

t.test('the OpenAPI document parses and lists every route, the proxy ones with their schemas', async (t) => {
  const res = await fetch(`${relay.apiUrl}/v1/openapi.json`);
  t.equal(res.status, 200);
  const doc = JSON.parse(await res.text());
  t.match(doc.openapi, /^3\./);
  const expected: Array<[string, string]> = [];
  for (const base of ['/v1/servers', '/v1/clusters']) {
    expected.push(
      ['post', base],
      ['get', base],
      ['get', `${base}/{id}`],
      ['delete', `${base}/{id}`],
      ['put', `${base}/{id}/udp`],
      ['post', `${base}/{id}/token`],
      ['get', `${base}/{id}/proxy`],
      ['put', `${base}/{id}/proxy`],
      ['post', `${base}/{id}/proxy/ports`],
      ['put', `${base}/{id}/proxy/ports/{port_id}`],
      ['delete', `${base}/{id}/proxy/ports/{port_id}`],
      ['put', `${base}/{id}/proxy/access`],
    );
  }
  expected.push(['post', '/v1/keys'], ['get', '/v1/keys'], ['delete', '/v1/keys/{id}']);
  for (const [method, path] of expected) t.ok(doc.paths?.[path]?.[method], `${method.toUpperCase()} ${path}`);
  const opIds = Object.values(doc.paths).flatMap((p: any) => Object.values(p).map((o: any) => o.operationId));
  t.equal(new Set(opIds).size, opIds.length, 'operationIds are unique');

  const create = doc.paths['/v1/servers/{id}/proxy/ports'].post;
  const body = create.requestBody.content['application/json'].schema;
  t.same(body.required, ['internal_port']);
  for (const f of ['internal_port', 'external_port', 'protocol', 'description', 'name', 'http', 'health_check', 'access_control']) t.ok(body.properties[f], `create body has ${f}`);
  t.ok(create.responses['201'], '201 documented');
  const get = doc.paths['/v1/servers/{id}/proxy'].get;
  const queryNames = get.parameters.filter((p: any) => p.in === 'query').map((p: any) => p.name).sort();
  t.same(queryNames, ['include_access_logs', 'include_health', 'include_ssl_info']);
  const data = get.responses['200'].content['application/json'].schema.properties.data;
  for (const f of ['server_id', 'proxy_url', 'proxy_status', 'port_mappings', 'access_control', 'network_configuration', 'ssl_certificate', 'access_logs']) t.ok(data.properties[f], `proxy view has ${f}`);
  const cdata = doc.paths['/v1/clusters/{id}/proxy'].get.responses['200'].content['application/json'].schema.properties.data;
  t.ok(cdata.properties.cluster_id, 'the alias documents cluster_id');
  const access = doc.paths['/v1/servers/{id}/proxy/access'].put.requestBody.content['application/json'].schema;
  for (const f of ['default_authentication', 'session_timeout_minutes', 'max_concurrent_sessions', 'ip_whitelist', 'blocked_ips', 'rate_limiting', 'security_headers', 'cors', 'compression']) {
    t.ok(access.properties[f], `access body has ${f}`);
  }
  const settings = doc.paths['/v1/servers/{id}/proxy'].put.requestBody.content['application/json'].schema;
  t.ok(settings.properties.enabled && settings.properties.allowedIps, 'PUT /proxy {enabled, allowedIps}');
});

t.test('secrets stay out of the relay log', async (t) => {
  const log = readFileSync(relay.logFile, 'utf8');
  t.notOk(log.includes(relay.adminKey), 'admin key not logged');
  t.notOk(log.includes(alice.token.split('_').at(-1)!), 'agent token secret not logged');
  t.match(log, /mapping created/);
});
