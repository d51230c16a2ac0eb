// The management API's server routes end to end: buildApi on a real loopback
// port, a real SQLite store in a temp dir, the real port allocator, real HTTP
// (fetch), and the `portico server …` CLI against it.
import t from 'tap';
import { mkdtemp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';

import { loadOrCreateAdminKey } from '../../relay/api/admin-key.js';
import { buildApi } from '../../relay/api/app.js';
import type { RelayHooks, ServerStatus } from '../../relay/api/types.js';
import { hashSecret, parseAgentToken, verifySecret } from '../../relay/auth/tokens.js';
import { allocateBlock } from '../../relay/ports/allocator.js';
import { openStore } from '../../relay/store/index.js';
import type { Store } from '../../relay/store/store.js';
import type { RelayConfig } from '../../shared/config/types.js';
import { runServerCli } from '../../cli/commands/server.js';

const RANGE = { start: 31000, end: 31059 }; // 60 ports: room for 20 + 12, then a 40 block does not fit

function testConfig(dataDir: string): RelayConfig {
  const hp = (port: number) => ({ host: '127.0.0.1', port });
  return {
    dataDir,
    domain: 'localhost',
    publicHostname: 'connect01.localhost',
    dev: true,
    logLevel: 'debug',
    tunnel: { listen: hp(0), streamWindow: 4 << 20, keepaliveInterval: 15_000, keepaliveTimeout: 45_000, handshakeTimeout: 10_000, maxPendingPerIp: 64, sealedData: true },
    ports: { bind: '127.0.0.1', range: RANGE, perServer: 20, reserved: [] },
    mappings: { maxPerServer: 40, reservedInternalPorts: [22, 5901, 6006, 6637, 7088, 8888] },
    servers: { maxPerOwner: 0 },
    https: { listen: hp(0), timeouts: { standard: 60_000, streaming: 600_000, download: 1_800_000 } },
    http: { listen: hp(0) },
    api: { listen: hp(0) },
    store: { url: 'sqlite:portico.db' },
    udp: { flowIdleTimeout: 60_000 },
    shutdownGrace: 1_000,
  };
}

interface Harness {
  base: string;
  adminKey: string;
  store: Store;
  app: FastifyInstance;
  calls: { changed: string[]; deleted: string[]; rotated: string[] };
  online: Map<string, ServerStatus>;
  logs: string[];
  dataDir: string;
  config: RelayConfig;
}

const OFFLINE: ServerStatus = { online: false, agentVersion: null, connectedSince: null, remoteAddress: null, openStreams: 0, udp: null, transport: null, agents: 0 };

async function startHarness(): Promise<Harness> {
  const dataDir = await mkdtemp(join(tmpdir(), 'portico-api-'));
  const admin = await loadOrCreateAdminKey(join(dataDir, 'state'), {});
  const store = await openStore('sqlite:portico.db', dataDir);
  const config = testConfig(dataDir);
  const calls = { changed: [] as string[], deleted: [] as string[], rotated: [] as string[] };
  const online = new Map<string, ServerStatus>();
  const relay: RelayHooks = {
    async allocatePorts(count) {
      const taken = (await store.listServers()).flatMap((s) => s.ports);
      return allocateBlock({ range: config.ports.range, count, reserved: config.ports.reserved, taken, bindHost: '127.0.0.1', isFree: async () => true });
    },
    serverStatus: (id) => online.get(id) ?? OFFLINE,
    serverChanged: async (id) => void calls.changed.push(id),
    serverDeleted: async (id) => void calls.deleted.push(id),
    tokenRotated: async (id) => void calls.rotated.push(id),
  };
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const app = await buildApi({ store, config, logger, adminKeyHash: admin.hash, relay });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { base: `http://127.0.0.1:${port}`, adminKey: admin.key!, store, app, calls, online, logs, dataDir, config };
}

interface Res {
  status: number;
  body: any;
  text: string;
}

function client(h: Harness) {
  return async function api(method: string, path: string, opts: { body?: unknown; key?: string | null; headers?: Record<string, string> } = {}): Promise<Res> {
    const headers: Record<string, string> = { ...opts.headers };
    const key = opts.key === undefined ? h.adminKey : opts.key;
    if (key !== null) headers.authorization = `Bearer ${key}`;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(h.base + path, { method, headers, body: opts.body === undefined ? null : JSON.stringify(opts.body) });
    const text = await res.text();
    let body: any;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: res.status, body, text };
  };
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

function expectError(t: TapTest, res: Res, status: number, code: string, field?: string) {
  t.equal(res.status, status, `HTTP ${status}`);
  t.equal(res.body?.success, false, 'success false');
  t.equal(res.body?.error?.code, code, `code ${code}`);
  t.type(res.body?.error?.message, 'string');
  t.type(res.body?.error?.details, 'object');
  if (field !== undefined) t.equal(res.body?.error?.details?.field, field, `details.field ${field}`);
}

t.test('admin key bootstrap: env wins, else the file, else a new 0600 file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'portico-adminkey-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'data');
  const created = await loadOrCreateAdminKey(dataDir, {});
  t.equal(created.source, 'created');
  t.match(created.key, /^pak_[a-z2-7]{32}$/);
  t.equal(created.hash, hashSecret(created.key!));
  const file = join(dataDir, 'admin.key');
  t.equal((await stat(file)).mode & 0o777, 0o600, 'admin.key is mode 0600');
  t.equal((await stat(dataDir)).mode & 0o777, 0o700, 'data dir is created 0700');
  t.equal((await readFile(file, 'utf8')).trim(), created.key);

  const again = await loadOrCreateAdminKey(dataDir, {});
  t.same(again, { key: created.key, hash: created.hash, source: 'file' });

  const env = await loadOrCreateAdminKey(dataDir, { PORTICO_ADMIN_KEY: 'from-env-key' });
  t.same(env, { key: 'from-env-key', hash: hashSecret('from-env-key'), source: 'env' });
});

// One relay API for the tests below; they run in order and build on each other.
const h = await startHarness();
t.teardown(async () => {
await h.app.close();
await h.store.close();
await rm(h.dataDir, { recursive: true, force: true });
});
const api = client(h);
const tokens: string[] = [];
let defaultId = '';

t.test('admin.key of the harness was written 0600', async (t) => {
  t.equal((await stat(join(h.dataDir, 'state', 'admin.key'))).mode & 0o777, 0o600);
});

t.test('missing or wrong key: 401 UNAUTHORIZED, same body either way', async (t) => {
  const missing = await api('GET', '/v1/servers', { key: null });
  const wrong = await api('GET', '/v1/servers', { key: 'pak_' + 'a'.repeat(32) });
  const basic = await api('GET', '/v1/servers', { key: null, headers: { authorization: `Basic ${h.adminKey}` } });
  const empty = await api('POST', '/v1/servers', { key: '', body: {} });
  for (const r of [missing, wrong, basic, empty]) expectError(t, r, 401, 'UNAUTHORIZED');
  t.same(wrong.body.error, missing.body.error, 'a wrong key is answered exactly like a missing one');
  t.same(basic.body.error, missing.body.error);
  t.same(missing.body.error.details, {}, 'no detail of why');
  t.equal((await api('GET', '/v1/servers/anything', { key: 'nope' })).status, 401, 'auth is checked before existence');
  t.equal((await api('DELETE', '/v1/clusters/x', { key: null })).status, 401, 'alias routes need a key too');
});

t.test("what curl users send: the seed's bare Authorization header, curl -d bodies, trailing slashes", async (t) => {
  const bare = await api('GET', '/v1/servers', { key: null, headers: { authorization: h.adminKey } });
  t.equal(bare.status, 200, 'Authorization: <api-key> (the seed reference form)');
  expectError(t, await api('GET', '/v1/servers', { key: null, headers: { authorization: 'pak_' + 'b'.repeat(32) } }), 401, 'UNAUTHORIZED');
  // curl -d '{…}' labels the JSON application/x-www-form-urlencoded.
  const form = await fetch(h.base + '/v1/servers', {
    method: 'POST',
    headers: { authorization: `Bearer ${h.adminKey}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: '{"id": "curl-d", "ports": 10}',
  });
  t.equal(form.status, 201, 'a JSON object body is read whatever its label');
  const notJson = await fetch(h.base + '/v1/servers', {
    method: 'POST',
    headers: { authorization: `Bearer ${h.adminKey}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'id=form-field',
  });
  t.equal(notJson.status, 415);
  const nj = (await notJson.json()) as any;
  t.equal(nj.error.code, 'VALIDATION_FAILED');
  t.match(nj.error.message, /send the body as JSON with Content-Type: application\/json \(got application\/x-www-form-urlencoded\)/);
  const slash = await api('GET', '/v1/servers/');
  t.equal(slash.status, 200, 'GET /v1/servers/ lists');
  t.ok(slash.body.data.some((s: any) => s.id === 'curl-d'));
  t.equal((await api('GET', '/v1/servers/curl-d/')).body.data.id, 'curl-d', 'a trailing slash after an id');
  t.equal((await api('DELETE', '/v1/servers/curl-d')).status, 200);
});

t.test('POST /v1/servers with defaults', async (t) => {
  const res = await api('POST', '/v1/servers', { body: {} });
  t.equal(res.status, 201);
  t.equal(res.body.success, true);
  t.type(res.body.meta, 'object');
  const d = res.body.data;
  t.match(d.id, /^srv-[a-z2-7]{8}$/);
  t.equal(d.owner, 'default');
  t.equal(d.udp, false);
  t.equal(d.ports.length, 20, 'config.ports.perServer ports');
  t.same(d.ports, Array.from({ length: 20 }, (_, i) => d.ports[0] + i), 'a contiguous block');
  t.ok(d.ports[0] >= RANGE.start && d.ports[19] <= RANGE.end, 'inside ports.range');
  t.ok(!Number.isNaN(Date.parse(d.created_at)), 'created_at is a timestamp');
  const parsed = parseAgentToken(d.agent_token);
  t.ok(parsed, 'agent token parses');
  t.equal(parsed!.serverId, d.id, 'token names its server');
  tokens.push(d.agent_token);
  const rec = await h.store.getServer(d.id);
  t.equal(rec!.tokenHash, hashSecret(parsed!.secret), 'only the hash of the secret is stored');
  t.ok(verifySecret(parsed!.secret, rec!.tokenHash));
  t.notOk(JSON.stringify(rec).includes(parsed!.secret), 'the store never sees the secret');
  t.notOk('token_hash' in d || 'tokenHash' in d, 'the hash is not returned');
  t.ok(h.calls.changed.includes(d.id), 'relay told about the new server');
  defaultId = d.id;

  const noBody = await api('POST', '/v1/servers', { body: undefined, headers: { 'content-type': 'application/json' } });
  t.equal(noBody.status, 201, 'an empty body means all defaults');
  t.equal((await api('DELETE', `/v1/servers/${noBody.body.data.id}`)).status, 200);
});

t.test('POST /v1/servers with id, owner, ports, udp', async (t) => {
  const res = await api('POST', '/v1/servers', { body: { id: 'gpu-7', owner: 'alice', ports: 12, udp: true } });
  t.equal(res.status, 201);
  const d = res.body.data;
  t.equal(d.id, 'gpu-7');
  t.equal(d.owner, 'alice');
  t.equal(d.udp, true);
  t.equal(d.ports.length, 12);
  t.match(d.agent_token, /^ptk_gpu-7_[a-z2-7]{32}$/);
  tokens.push(d.agent_token);
});

t.test('validation: 400 VALIDATION_FAILED naming the field', async (t) => {
  expectError(t, await api('POST', '/v1/servers', { body: { ports: 9 } }), 400, 'VALIDATION_FAILED', 'ports');
  expectError(t, await api('POST', '/v1/servers', { body: { ports: 41 } }), 400, 'VALIDATION_FAILED', 'ports');
  expectError(t, await api('POST', '/v1/servers', { body: { ports: 20.5 } }), 400, 'VALIDATION_FAILED', 'ports');
  expectError(t, await api('POST', '/v1/servers', { body: { id: 'Bad_Id' } }), 400, 'VALIDATION_FAILED', 'id');
  expectError(t, await api('POST', '/v1/servers', { body: { id: '-x' } }), 400, 'VALIDATION_FAILED', 'id');
  expectError(t, await api('POST', '/v1/servers', { body: { id: 'x'.repeat(64) } }), 400, 'VALIDATION_FAILED', 'id');
  expectError(t, await api('POST', '/v1/servers', { body: { owner: 'Alice' } }), 400, 'VALIDATION_FAILED', 'owner');
  expectError(t, await api('POST', '/v1/servers', { body: { udp: 'yes' } }), 400, 'VALIDATION_FAILED', 'udp');
  expectError(t, await api('POST', '/v1/servers', { body: { colour: 'red' } }), 400, 'VALIDATION_FAILED', 'colour');
  expectError(t, await api('POST', '/v1/servers', { body: [] }), 400, 'VALIDATION_FAILED');
  const badJson = await fetch(h.base + '/v1/servers', {
    method: 'POST',
    headers: { authorization: `Bearer ${h.adminKey}`, 'content-type': 'application/json' },
    body: '{"ports": ',
  });
  t.equal(badJson.status, 400);
  t.equal(((await badJson.json()) as any).error.code, 'VALIDATION_FAILED', 'malformed JSON');
  expectError(t, await api('GET', '/v1/servers/UPPER'), 400, 'VALIDATION_FAILED', 'id');
  t.equal((await h.store.listServers()).length, 2, 'nothing was created');
});

t.test('duplicate id: 409 CONFLICT', async (t) => {
  expectError(t, await api('POST', '/v1/servers', { body: { id: 'gpu-7' } }), 409, 'CONFLICT', 'id');
  expectError(t, await api('POST', '/v1/clusters', { body: { id: defaultId, ports: 10 } }), 409, 'CONFLICT');
});

t.test('pool exhausted: 503 POOL_EXHAUSTED', async (t) => {
  const res = await api('POST', '/v1/servers', { body: { id: 'too-big', ports: 40 } });
  expectError(t, res, 503, 'POOL_EXHAUSTED');
  t.equal(await h.store.getServer('too-big'), undefined, 'no record left behind');
});

t.test('concurrent creates get disjoint blocks', async (t) => {
  const res = await Promise.all([1, 2].map((i) => api('POST', '/v1/servers', { body: { id: `par-${i}`, ports: 10 } })));
  t.same(
    res.map((r) => r.status),
    [201, 201],
  );
  const [a, b] = res.map((r) => r.body.data.ports as number[]);
  t.notOk(a!.some((p) => b!.includes(p)), 'no port handed out twice');
  for (const i of [1, 2]) t.equal((await api('DELETE', `/v1/servers/par-${i}`)).status, 200);
});

t.test('GET /v1/servers lists in snake_case with meta.total', async (t) => {
  h.online.set('gpu-7', { online: true, agentVersion: '0.1.0', connectedSince: '2025-01-01T00:00:00.000Z', remoteAddress: '127.0.0.1:5555', openStreams: 0, udp: null, transport: 'tls', agents: 1 });
  const res = await api('GET', '/v1/servers');
  t.equal(res.status, 200);
  t.equal(res.body.success, true);
  t.equal(res.body.meta.total, 2);
  t.same(
    res.body.data.map((s: any) => s.id),
    [defaultId, 'gpu-7'],
  );
  const gpu = res.body.data.find((s: any) => s.id === 'gpu-7');
  t.match(gpu, { owner: 'alice', udp: true, online: true, agent_version: '0.1.0', connected_since: '2025-01-01T00:00:00.000Z' });
  t.ok('created_at' in gpu && !('createdAt' in gpu), 'snake_case');
  t.notMatch(res.text, /token/i, 'no token or token hash in lists');
  const alias = await api('GET', '/v1/clusters');
  t.same(alias.body.data, res.body.data, '/v1/clusters lists the same');
});

t.test('GET /v1/servers/{id} and its /v1/clusters alias', async (t) => {
  const rec = await h.store.getServer('gpu-7');
  await h.store.createMapping({
    id: 'port_test1',
    serverId: 'gpu-7',
    internalPort: 8080,
    externalPort: rec!.ports[0]!,
    protocol: 'tcp',
    description: 'web app',
    name: 'web',
    http: true,
    httpsToken: 'a'.repeat(26),
    source: 'api',
    healthCheck: null,
    accessControl: null,
  });
  const res = await api('GET', '/v1/servers/gpu-7');
  t.equal(res.status, 200);
  const d = res.body.data;
  t.match(d, {
    id: 'gpu-7',
    owner: 'alice',
    udp: true,
    online: true,
    agent_version: '0.1.0',
    connected_since: '2025-01-01T00:00:00.000Z',
    remote_address: '127.0.0.1:5555',
    public_hostname: 'connect01.localhost',
  });
  t.same(d.ports, rec!.ports);
  t.same(d.mappings, [
    { id: 'port_test1', internal_port: 8080, external_port: rec!.ports[0], protocol: 'tcp', name: 'web', http: true, description: 'web app', source: 'api' },
  ]);
  t.notMatch(res.text, /token/i, 'no agent or https token in the server view');
  const alias = await api('GET', '/v1/clusters/gpu-7');
  t.equal(alias.status, 200);
  t.same(alias.body.data, d, 'alias returns the same record');
  const offline = await api('GET', `/v1/servers/${defaultId}`);
  t.match(offline.body.data, { online: false, agent_version: null, connected_since: null, mappings: [] });
  expectError(t, await api('GET', '/v1/servers/no-such'), 404, 'NOT_FOUND');
  expectError(t, await api('GET', '/v1/clusters/no-such'), 404, 'NOT_FOUND');
});

t.test('PUT /v1/servers/{id}/udp', async (t) => {
  h.calls.changed.length = 0;
  expectError(t, await api('PUT', '/v1/servers/gpu-7/udp', { body: {} }), 400, 'VALIDATION_FAILED', 'enabled');
  expectError(t, await api('PUT', '/v1/servers/gpu-7/udp', { body: { enabled: 'off' } }), 400, 'VALIDATION_FAILED', 'enabled');
  const on = await api('PUT', `/v1/servers/${defaultId}/udp`, { body: { enabled: true } });
  t.equal(on.status, 200);
  t.equal(on.body.data.udp, true);
  t.equal((await h.store.getServer(defaultId))!.udp, true, 'persisted');
  t.same(h.calls.changed, [defaultId], 'relay told');
  const off = await api('PUT', `/v1/clusters/${defaultId}/udp`, { body: { enabled: false } });
  t.equal(off.body.data.udp, false, 'via the alias too');
  const rec = await h.store.getServer('gpu-7');
  await h.store.createMapping({
    id: 'port_udp1',
    serverId: 'gpu-7',
    internalPort: 9000,
    externalPort: rec!.ports[1]!,
    protocol: 'udp',
    description: '',
    name: null,
    http: false,
    httpsToken: null,
    source: 'api',
    healthCheck: null,
    accessControl: null,
  });
  await api('PUT', '/v1/servers/gpu-7/udp', { body: { enabled: true } });
  const offWithMapping = await api('PUT', '/v1/servers/gpu-7/udp', { body: { enabled: false } });
  t.equal(offWithMapping.status, 200, 'UDP off with a udp mapping in place');
  t.ok(await h.store.getMapping('gpu-7', 'port_udp1'), 'the udp mapping is kept (disabled)');
  await h.store.deleteMapping('gpu-7', 'port_udp1');
  expectError(t, await api('PUT', '/v1/servers/no-such/udp', { body: { enabled: true } }), 404, 'NOT_FOUND');
});

t.test('POST /v1/servers/{id}/token rotates the agent token', async (t) => {
  const old = parseAgentToken(tokens[1]!)!;
  const res = await api('POST', '/v1/servers/gpu-7/token');
  t.equal(res.status, 200);
  t.equal(res.body.data.id, 'gpu-7');
  const fresh = parseAgentToken(res.body.data.agent_token);
  t.ok(fresh);
  t.equal(fresh!.serverId, 'gpu-7');
  t.not(fresh!.secret, old.secret);
  const rec = await h.store.getServer('gpu-7');
  t.ok(verifySecret(fresh!.secret, rec!.tokenHash), 'new token verifies');
  t.notOk(verifySecret(old.secret, rec!.tokenHash), 'old token stops working');
  t.same(h.calls.rotated, ['gpu-7'], 'relay told to drop the old session');
  tokens.push(res.body.data.agent_token);
  const alias = await api('POST', '/v1/clusters/gpu-7/token', { body: {} });
  t.equal(alias.status, 200, 'alias (an empty JSON body is fine)');
  tokens.push(alias.body.data.agent_token);
  expectError(t, await api('POST', '/v1/servers/no-such/token'), 404, 'NOT_FOUND');
});

t.test('owner-scoped keys see and change only their owner', async (t) => {
  const made = await api('POST', '/v1/keys', { body: { owner: 'alice' } });
  t.equal(made.status, 201);
  t.match(made.body.data, { owner: 'alice', id: /^key_/, key: /^pak_[a-z2-7]{32}$/ });
  const alice = made.body.data.key as string;
  const keys = await api('GET', '/v1/keys');
  t.equal(keys.body.meta.total, 1);
  t.same(Object.keys(keys.body.data[0]).sort(), ['created_at', 'id', 'owner'], 'listing never shows keys or hashes');
  t.notOk(keys.text.includes(alice));

  const list = await api('GET', '/v1/servers', { key: alice });
  t.same(
    list.body.data.map((s: any) => s.id),
    ['gpu-7'],
  );
  t.equal(list.body.meta.total, 1);
  t.same((await api('GET', '/v1/servers?owner=default', { key: alice })).body.data.map((s: any) => s.id), ['gpu-7'], 'cannot widen with ?owner');
  t.same((await api('GET', '/v1/servers?owner=alice')).body.data.map((s: any) => s.id), ['gpu-7'], 'admin may filter by owner');
  t.equal((await api('GET', '/v1/servers/gpu-7', { key: alice })).status, 200);

  const other = await api('GET', `/v1/servers/${defaultId}`, { key: alice });
  const missing = await api('GET', '/v1/servers/no-such-x', { key: alice });
  expectError(t, other, 404, 'NOT_FOUND');
  t.equal(other.body.error.message.replace(defaultId, 'ID'), missing.body.error.message.replace('no-such-x', 'ID'), "another owner's server looks missing");
  expectError(t, await api('DELETE', `/v1/servers/${defaultId}`, { key: alice }), 404, 'NOT_FOUND');
  expectError(t, await api('PUT', `/v1/clusters/${defaultId}/udp`, { key: alice, body: { enabled: true } }), 404, 'NOT_FOUND');
  expectError(t, await api('POST', `/v1/servers/${defaultId}/token`, { key: alice }), 404, 'NOT_FOUND');
  t.ok(await h.store.getServer(defaultId), 'still there');
  t.notOk(h.calls.deleted.includes(defaultId));

  const own = await api('POST', '/v1/servers', { key: alice, body: { ports: 10 } });
  t.equal(own.status, 201);
  t.equal(own.body.data.owner, 'alice', 'owner forced to the key owner');
  expectError(t, await api('POST', '/v1/servers', { key: alice, body: { owner: 'bob', ports: 10 } }), 400, 'VALIDATION_FAILED', 'owner');
  t.equal((await api('DELETE', `/v1/servers/${own.body.data.id}`, { key: alice })).status, 200);

  expectError(t, await api('GET', '/v1/keys', { key: alice }), 401, 'UNAUTHORIZED');
  expectError(t, await api('POST', '/v1/keys', { key: alice, body: { owner: 'alice' } }), 401, 'UNAUTHORIZED');
  expectError(t, await api('POST', '/v1/keys', { body: {} }), 400, 'VALIDATION_FAILED', 'owner');

  const del = await api('DELETE', `/v1/keys/${made.body.data.id}`);
  t.equal(del.status, 200);
  expectError(t, await api('GET', '/v1/servers', { key: alice }), 401, 'UNAUTHORIZED');
  expectError(t, await api('DELETE', `/v1/keys/${made.body.data.id}`), 404, 'NOT_FOUND');
});

t.test('servers.max_per_owner caps the servers an owner-scoped key registers; an admin key is not held to it', async (t) => {
  h.config.servers.maxPerOwner = 1;
  t.teardown(() => void (h.config.servers.maxPerOwner = 0));
  const made = await api('POST', '/v1/keys', { body: { owner: 'carol' } });
  const carol = made.body.data.key as string;
  const first = await api('POST', '/v1/servers', { key: carol, body: { ports: 10 } });
  t.equal(first.status, 201, 'the first server is within the limit');
  const before = (await h.store.listServers()).length;
  const over = await api('POST', '/v1/servers', { key: carol, body: { ports: 10 } });
  expectError(t, over, 422, 'SERVER_LIMIT_REACHED');
  t.same(over.body.error.details, { owner: 'carol', limit: 1 });
  t.match(over.body.error.message, /owner carol already has 1 servers \(limit 1\)/);
  t.equal((await h.store.listServers()).length, before, 'nothing was created and no ports taken');
  const byAdmin = await api('POST', '/v1/servers', { body: { owner: 'carol', ports: 10 } });
  t.equal(byAdmin.status, 201, 'the operator may go beyond it');
  t.equal((await api('DELETE', `/v1/servers/${first.body.data.id}`, { key: carol })).status, 200);
  expectError(t, await api('POST', '/v1/servers', { key: carol, body: { ports: 10 } }), 422, 'SERVER_LIMIT_REACHED');
  t.equal((await api('DELETE', `/v1/servers/${byAdmin.body.data.id}`, { key: carol })).status, 200);
  const again = await api('POST', '/v1/servers', { key: carol, body: { ports: 10 } });
  t.equal(again.status, 201, 'below the limit again after deleting');
  t.equal((await api('DELETE', `/v1/servers/${again.body.data.id}`, { key: carol })).status, 200);
  h.config.servers.maxPerOwner = 0;
  const a = await api('POST', '/v1/servers', { key: carol, body: { ports: 10 } });
  const b = await api('POST', '/v1/servers', { key: carol, body: { ports: 10 } });
  t.same([a.status, b.status], [201, 201], '0 means no limit');
  for (const x of [a, b]) await api('DELETE', `/v1/servers/${x.body.data.id}`, { key: carol });
  await api('DELETE', `/v1/keys/${made.body.data.id}`);
});

t.test('DELETE /v1/servers/{id}', async (t) => {
  h.calls.deleted.length = 0;
  const res = await api('DELETE', `/v1/servers/${defaultId}`);
  t.equal(res.status, 200);
  t.same(res.body.data, { id: defaultId, deleted: true });
  t.same(h.calls.deleted, [defaultId], 'relay told to free listeners and drop the agent');
  expectError(t, await api('GET', `/v1/servers/${defaultId}`), 404, 'NOT_FOUND');
  expectError(t, await api('DELETE', `/v1/servers/${defaultId}`), 404, 'NOT_FOUND');
  const viaAlias = await api('DELETE', '/v1/clusters/gpu-7');
  t.equal(viaAlias.status, 200, 'delete through the alias');
  t.equal((await h.store.listMappings('gpu-7')).length, 0, 'its mappings went too');
  const big = await api('POST', '/v1/servers', { body: { id: 'big', ports: 40 } });
  t.equal(big.status, 201, 'freed ports are allocatable again');
  t.equal((await api('DELETE', '/v1/servers/big')).status, 200);
});

t.test('unknown routes: 404 NOT_FOUND in the envelope', async (t) => {
  expectError(t, await api('GET', '/v1/nope'), 404, 'NOT_FOUND');
  expectError(t, await api('GET', '/nope', { key: null }), 404, 'NOT_FOUND');
  expectError(t, await api('PATCH', '/v1/servers'), 404, 'NOT_FOUND');
});

t.test('GET /v1/openapi.json: no auth, lists every route', async (t) => {
  const res = await api('GET', '/v1/openapi.json', { key: null });
  t.equal(res.status, 200);
  const doc = res.body;
  t.match(doc.openapi, /^3\./);
  t.ok(doc.info?.title);
  const want: Array<[string, string]> = [];
  for (const base of ['/v1/servers', '/v1/clusters']) {
    want.push([base, 'post'], [base, 'get'], [`${base}/{id}`, 'get'], [`${base}/{id}`, 'delete'], [`${base}/{id}/udp`, 'put'], [`${base}/{id}/token`, 'post']);
  }
  want.push(['/v1/keys', 'post'], ['/v1/keys', 'get'], ['/v1/keys/{id}', 'delete']);
  for (const [path, method] of want) {
    const op = doc.paths?.[path]?.[method];
    t.ok(op, `${method.toUpperCase()} ${path} documented`);
    t.ok(op?.responses && Object.keys(op.responses).some((c) => c.startsWith('2')), `${method.toUpperCase()} ${path} has a success response`);
  }
  const create = doc.paths['/v1/servers'].post;
  const body = create.requestBody.content['application/json'].schema;
  t.match(body.properties.ports, { type: 'integer', minimum: 10, maximum: 40 }, 'the validation schema is the documented one');
  t.ok(create.responses['201'].content['application/json'].schema.properties.data.properties.agent_token);
  t.ok(doc.components?.securitySchemes?.bearer, 'bearer auth documented');
  t.notOk(doc.paths['/v1/openapi.json'], 'the document itself is not listed');
});

t.test('the CLI drives the same API', async (t) => {
  const run = async (argv: string[], env: NodeJS.ProcessEnv = { PORTICO_API: h.base, PORTICO_API_KEY: h.adminKey }, cwd = h.dataDir) => {
    let out = '';
    let err = '';
    const code = await runServerCli(argv, { stdout: (s) => (out += s), stderr: (s) => (err += s), env, cwd });
    return { code, out, err };
  };

  const created = await run(['server', 'create', '--id', 'cli-1', '--owner', 'bob', '--ports', '10', '--udp']);
  t.equal(created.code, 0, created.err);
  t.match(created.out, /^id\s+cli-1$/m);
  t.match(created.out, /^owner\s+bob$/m);
  t.match(created.out, /^ports\s+\d+-\d+ \(10\)$/m);
  t.match(created.out, /^udp\s+on$/m);
  t.match(created.out, /ptk_cli-1_[a-z2-7]{32}/);
  t.equal(created.err, '');

  const json = await run(['server', 'create', '--json', '--id', 'cli-2', '--ports', '10']);
  t.equal(json.code, 0, json.err);
  const data = JSON.parse(json.out);
  t.match(data, { id: 'cli-2', owner: 'default', udp: false });
  t.equal(data.ports.length, 10);
  t.ok(parseAgentToken(data.agent_token));
  tokens.push(data.agent_token);

  const list = await run(['server', 'list']);
  t.equal(list.code, 0);
  const lines = list.out.trimEnd().split('\n');
  t.match(lines[0], /^ID\s+OWNER\s+PORTS\s+UDP\s+ONLINE\s+AGENT\s+CREATED$/);
  t.equal(lines.length, 3);
  const col = lines[0]!.indexOf('OWNER');
  for (const l of lines.slice(1)) t.match(l.slice(col), /^(bob|default)\s/, 'columns aligned');
  t.match(list.out, /^cli-1\s+bob\s+\d+-\d+ \(10\)\s+on\s+no\s+-\s/m);
  const listJson = await run(['server', 'list', '--json']);
  t.same(
    JSON.parse(listJson.out).map((s: any) => s.id),
    ['cli-1', 'cli-2'],
  );

  const show = await run(['server', 'show', 'cli-1']);
  t.equal(show.code, 0);
  t.match(show.out, /^id\s+cli-1$/m);
  t.match(show.out, /^online\s+no$/m);
  t.match(show.out, /no explicit mappings/);
  const showJson = await run(['server', 'show', 'cli-1', '--json']);
  t.match(JSON.parse(showJson.out), { id: 'cli-1', owner: 'bob', mappings: [] });

  const udp = await run(['server', 'udp', 'cli-2', 'on']);
  t.equal(udp.code, 0);
  t.match(udp.out, /udp on for server cli-2/);
  const rot = await run(['server', 'token', 'cli-2', '--json']);
  t.equal(rot.code, 0);
  t.match(JSON.parse(rot.out), { id: 'cli-2', agent_token: /^ptk_cli-2_/ });
  tokens.push(JSON.parse(rot.out).agent_token);

  const bad = await run(['server', 'create', '--ports', '9']);
  t.equal(bad.code, 1);
  t.match(bad.err, /^error VALIDATION_FAILED: ports must be >= 10/);
  t.equal(bad.out, '');
  const dup = await run(['server', 'create', '--id', 'cli-1']);
  t.equal(dup.code, 1);
  t.match(dup.err, /^error CONFLICT: /);
  const notNum = await run(['server', 'create', '--ports', 'many']);
  t.equal(notNum.code, 1, 'commander rejects a non-number');
  t.match(notNum.err, /^error USAGE: .*--ports/);
  const noId = await run(['server', 'show']);
  t.equal(noId.code, 1);
  t.match(noId.err, /^error USAGE: missing required argument/);
  const help = await run(['server', '--help']);
  t.equal(help.code, 0);
  for (const sub of ['create', 'list', 'show', 'rm']) t.match(help.out, new RegExp(`\\b${sub}\\b`), `help lists ${sub}`);
  t.match(help.out, /--api <url>/);

  const rm1 = await run(['server', 'rm', 'cli-1']);
  t.equal(rm1.code, 0);
  t.match(rm1.out, /removed server cli-1/);
  const rm2 = await run(['server', 'rm', 'cli-1']);
  t.equal(rm2.code, 1);
  t.equal(rm2.err, 'error NOT_FOUND: server cli-1 not found\n');
  const showGone = await run(['server', 'show', 'cli-1']);
  t.match(showGone.err, /^error NOT_FOUND: /);

  const noKey = await run(['server', 'list'], { PORTICO_API: h.base });
  t.equal(noKey.code, 1);
  t.match(noKey.err, /^error UNAUTHORIZED: /);
  const wrongKey = await run(['server', 'list', '--api-key', 'pak_wrong'], { PORTICO_API: h.base });
  t.match(wrongKey.err, /^error UNAUTHORIZED: /);

  const devDir = await mkdtemp(join(tmpdir(), 'portico-cli-'));
  t.teardown(() => rm(devDir, { recursive: true, force: true }));
  await mkdir(join(devDir, '.portico'));
  await writeFile(join(devDir, '.portico', 'admin.key'), h.adminKey + '\n', { mode: 0o600 });
  const fromFile = await run(['server', 'list', '--json', '--api', h.base], {}, devDir);
  t.equal(fromFile.code, 0, `key read from ./.portico/admin.key: ${fromFile.err}`);
  t.same(
    JSON.parse(fromFile.out).map((s: any) => s.id),
    ['cli-2'],
  );

  const down = await run(['server', 'list', '--api', `http://127.0.0.1:${await closedPort()}`]);
  t.equal(down.code, 1);
  t.match(down.err, /^error API_UNREACHABLE: cannot reach the API/);

  t.equal((await run(['server', 'rm', 'cli-2'])).code, 0);
});

t.test('logs never carry keys or tokens', async (t) => {
  const all = h.logs.join('');
  t.ok(all.length > 0, 'something was logged');
  t.notOk(all.includes(h.adminKey), 'admin key');
  for (const tok of tokens) t.notOk(all.includes(tok) || all.includes(parseAgentToken(tok)!.secret), 'agent token');
  t.notMatch(all, /authorization|Bearer /i);
});
