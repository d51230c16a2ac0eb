import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import BetterSqlite3 from 'better-sqlite3';
import t, { type Test } from 'tap';

import { openStore, sqlitePathFromUrl } from '../../relay/store/index.js';
import { MIGRATIONS, SCHEMA_VERSION, migrate } from '../../relay/store/migrations.js';
import { SqliteStore } from '../../relay/store/sqlite.js';
import type { NewMapping, Store } from '../../relay/store/store.js';
import { PorticoError } from '../../shared/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'portico-store-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

async function rejectsWith(t: Tap, p: Promise<unknown>, code: string, msg: string): Promise<PorticoError> {
  try {
    await p;
  } catch (err) {
    t.ok(err instanceof PorticoError, `${msg}: a PorticoError`);
    t.equal((err as PorticoError).code, code, msg);
    return err as PorticoError;
  }
  t.fail(`${msg}: did not reject`);
  return new PorticoError('INTERNAL', 'unreachable');
}
type Tap = Pick<Test, 'ok' | 'equal' | 'fail'>;

const server = (id: string, ports = [20000, 20001, 20002]) => ({ id, owner: 'alice', ports, udp: false, tokenHash: `hash-${id}` });
const mapping = (over: Partial<NewMapping> & Pick<NewMapping, 'id'>): NewMapping => ({
  serverId: 'gpu-1',
  internalPort: 8080,
  externalPort: 20000,
  protocol: 'tcp',
  description: '',
  name: null,
  http: false,
  httpsToken: null,
  source: 'api',
  healthCheck: null,
  accessControl: null,
  ...over,
});

t.test('servers: CRUD', async (t) => {
  const store = await openStore('sqlite:crud.db', dir);
  t.teardown(() => store.close());
  const s = await store.createServer(server('gpu-1', [20002, 20000, 20001]));
  t.same(s.ports, [20000, 20001, 20002], 'ports ascending');
  t.equal(s.proxyEnabled, true);
  t.same(s.allowedIps, []);
  t.equal(s.access, null);
  t.match(s.createdAt, /^\d{4}-\d\d-\d\dT.*Z$/);
  t.same(await store.getServer('gpu-1'), s);
  t.equal(await store.getServer('nope'), undefined);

  await store.createServer({ ...server('gpu-2'), owner: 'bob', udp: true, proxyEnabled: false, allowedIps: ['10.0.0.0/8'], access: { rate_limit: { requests_per_minute: 60 } } });
  t.same((await store.listServers()).map((x) => x.id), ['gpu-1', 'gpu-2'], 'ordered by creation');
  t.same((await store.listServers('bob')).map((x) => x.id), ['gpu-2']);
  const bob = (await store.getServer('gpu-2'))!;
  t.same([bob.udp, bob.proxyEnabled, bob.allowedIps, bob.access], [true, false, ['10.0.0.0/8'], { rate_limit: { requests_per_minute: 60 } }]);

  const u = await store.updateServer('gpu-1', { udp: true, allowedIps: ['1.2.3.4/32'], tokenHash: 'rotated' });
  t.equal(u.udp, true);
  t.equal(u.tokenHash, 'rotated');
  t.equal(u.owner, 'alice', 'unpatched fields kept');
  t.ok(u.updatedAt > s.updatedAt, 'updatedAt bumped');
  t.equal(u.createdAt, s.createdAt);
  t.same(await store.getServer('gpu-1'), u);

  await rejectsWith(t, store.createServer(server('gpu-1')), 'CONFLICT', 'duplicate server id');
  await rejectsWith(t, store.updateServer('nope', { udp: true }), 'NOT_FOUND', 'update missing server');
  t.equal(await store.deleteServer('gpu-2'), true);
  t.equal(await store.deleteServer('gpu-2'), false);
});

t.test('mappings: CRUD and constraints', async (t) => {
  const store = await openStore(`sqlite:${join(dir, 'mappings.db')}`, '/nonexistent');
  t.teardown(() => store.close());
  await store.createServer(server('gpu-1'));
  await store.createServer(server('gpu-2'));

  const m1 = await store.createMapping(mapping({ id: 'port_1', name: 'gradio', http: true, httpsToken: 'k3x9abc', healthCheck: { enabled: true, path: '/' } }));
  t.equal(m1.name, 'gradio');
  t.same(m1.healthCheck, { enabled: true, path: '/' });
  t.same(await store.getMapping('gpu-1', 'port_1'), m1);
  t.equal(await store.getMapping('gpu-2', 'port_1'), undefined, 'scoped to its server');
  t.same(await store.findMappingByName('gradio'), m1);
  t.same(await store.findMappingByName('GRADIO'), m1, 'names are hostnames: case-insensitive');
  t.same(await store.findMappingByHttpsToken('k3x9abc'), m1);
  t.equal(await store.findMappingByHttpsToken('zzz'), undefined);

  const dup = await rejectsWith(t, store.createMapping(mapping({ id: 'port_2', internalPort: 9000 })), 'PORT_ALREADY_MAPPED', 'same external port and protocol');
  t.equal(dup.details?.existing_mapping_id, 'port_1');
  const udp = await store.createMapping(mapping({ id: 'port_2', internalPort: 9000, protocol: 'udp' }));
  t.equal(udp.protocol, 'udp', 'same port, other protocol is fine');
  await store.createMapping(mapping({ id: 'port_3', serverId: 'gpu-2' }));
  const named = await rejectsWith(t, store.createMapping(mapping({ id: 'port_4', externalPort: 20001, name: 'Gradio' })), 'NAME_TAKEN', 'name unique per relay');
  t.equal(named.details?.existing_mapping_id, 'port_1');
  await rejectsWith(t, store.createMapping(mapping({ id: 'port_4', externalPort: 20001, httpsToken: 'k3x9abc' })), 'CONFLICT', 'https token unique');
  await rejectsWith(t, store.createMapping(mapping({ id: 'port_1', externalPort: 20001 })), 'CONFLICT', 'duplicate mapping id');
  await rejectsWith(t, store.createMapping(mapping({ id: 'port_5', serverId: 'ghost' })), 'NOT_FOUND', 'unknown server');
  await rejectsWith(t, store.createMapping(mapping({ id: 'port_5', externalPort: 70000 })), 'VALIDATION_FAILED', 'CHECK constraint');

  await store.createMapping(mapping({ id: 'port_6', externalPort: 20001, internalPort: 7860 }));
  const m6 = await store.updateMapping('gpu-1', 'port_6', { description: 'vLLM', http: true, httpsToken: 'tok6', name: undefined });
  t.equal(m6.description, 'vLLM');
  t.equal(m6.name, null);
  const moved = await rejectsWith(t, store.updateMapping('gpu-1', 'port_6', { externalPort: 20000 }), 'PORT_ALREADY_MAPPED', 'update onto a used port');
  t.equal(moved.details?.existing_mapping_id, 'port_1');
  await rejectsWith(t, store.updateMapping('gpu-1', 'port_6', { name: 'gradio' }), 'NAME_TAKEN', 'update onto a used name');
  t.equal((await store.updateMapping('gpu-1', 'port_1', { name: 'gradio', externalPort: 20000 })).name, 'gradio', 'keeping its own name and port is no conflict');
  t.equal((await store.updateMapping('gpu-1', 'port_1', { name: null })).name, null, 'name can be cleared');
  await rejectsWith(t, store.updateMapping('gpu-2', 'port_1', { description: 'x' }), 'NOT_FOUND', 'update on the wrong server');

  t.same((await store.listMappings('gpu-1')).map((m) => m.id), ['port_1', 'port_2', 'port_6']);
  t.same((await store.listAllMappings()).map((m) => m.id), ['port_1', 'port_2', 'port_6', 'port_3']);
  t.equal(await store.deleteMapping('gpu-1', 'port_2'), true);
  t.equal(await store.deleteMapping('gpu-1', 'port_2'), false);
  t.equal(await store.deleteMapping('gpu-2', 'port_1'), false, 'delete is scoped to its server');

  t.equal(await store.deleteServer('gpu-1'), true);
  t.same((await store.listAllMappings()).map((m) => m.id), ['port_3'], "deleting a server deletes its mappings");
  t.equal(await store.findMappingByHttpsToken('tok6'), undefined);
});

t.test('api keys and meta', async (t) => {
  const store = await openStore('sqlite::memory:', dir);
  t.teardown(() => store.close());
  const admin = await store.createApiKey({ id: 'key_admin', owner: null, keyHash: 'h1' });
  await store.createApiKey({ id: 'key_bob', owner: 'bob', keyHash: 'h2' });
  t.same(await store.findApiKeyByHash('h1'), admin);
  t.equal(await store.findApiKeyByHash('nope'), undefined);
  t.same((await store.listApiKeys()).map((k) => k.owner), [null, 'bob']);
  await rejectsWith(t, store.createApiKey({ id: 'key_x', owner: null, keyHash: 'h1' }), 'CONFLICT', 'key hash unique');
  await rejectsWith(t, store.createApiKey({ id: 'key_bob', owner: null, keyHash: 'h3' }), 'CONFLICT', 'key id unique');
  t.equal(await store.deleteApiKey('key_bob'), true);
  t.equal(await store.deleteApiKey('key_bob'), false);

  t.equal(await store.getMeta('ca_fingerprint'), undefined);
  await store.setMeta('ca_fingerprint', 'aa');
  await store.setMeta('ca_fingerprint', 'bb');
  t.equal(await store.getMeta('ca_fingerprint'), 'bb');
});

t.test('close and reopen keeps everything; WAL and foreign keys are on', async (t) => {
  const url = 'sqlite:persist/state.db';
  let store: Store = await openStore(url, dir);
  t.ok(existsSync(join(dir, 'persist/state.db')), 'relative to data dir, parent created');
  await store.createServer({ ...server('gpu-7'), access: { blocked_ips: ['1.1.1.1'] } });
  await store.createMapping(mapping({ id: 'port_a', serverId: 'gpu-7', name: 'jupyter', http: true, httpsToken: 'tok' }));
  await store.createApiKey({ id: 'key_1', owner: null, keyHash: 'hh' });
  await store.setMeta('k', 'v');
  const before = {
    servers: await store.listServers(),
    mappings: await store.listAllMappings(),
    keys: await store.listApiKeys(),
  };
  await store.close();
  await store.close();
  await rejectsWith(t, store.getServer('gpu-7'), 'INTERNAL', 'closed store rejects');

  store = await openStore(url, dir);
  t.teardown(() => store.close());
  t.same(await store.listServers(), before.servers);
  t.same(await store.listAllMappings(), before.mappings);
  t.same(await store.listApiKeys(), before.keys);
  t.equal(await store.getMeta('k'), 'v');
  t.equal((store as SqliteStore).schemaVersion(), SCHEMA_VERSION);

  const raw = new BetterSqlite3(join(dir, 'persist/state.db'), { readonly: true });
  t.teardown(() => raw.close());
  t.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
  t.same(
    (raw.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'mappings_%' ORDER BY name").all() as Array<{ name: string }>).map((r) => r.name),
    ['mappings_external', 'mappings_https_token', 'mappings_name'],
  );
});

t.test('migrations are idempotent and refuse a newer schema', async (t) => {
  const file = join(dir, 'migrate.db');
  const db = new BetterSqlite3(file);
  t.teardown(() => db.close());
  t.same(migrate(db), { from: 0, to: MIGRATIONS.length });
  t.same(migrate(db), { from: MIGRATIONS.length, to: MIGRATIONS.length }, 'second run is a no-op');
  const s1 = new SqliteStore(file);
  await s1.createServer(server('gpu-1'));
  await s1.close();
  const s2 = new SqliteStore(file);
  t.equal((await s2.listServers()).length, 1, 'opening again migrates nothing and loses nothing');
  await s2.close();

  // A migration list that grows later applies only the new step.
  const extra = [...MIGRATIONS, { version: MIGRATIONS.length + 1, name: 'test column', sql: 'ALTER TABLE servers ADD COLUMN note TEXT' }];
  t.same(migrate(db, extra), { from: MIGRATIONS.length, to: MIGRATIONS.length + 1 });
  t.same(migrate(db, extra), { from: MIGRATIONS.length + 1, to: MIGRATIONS.length + 1 });
  // A failing migration leaves the version where it was.
  const broken = [...extra, { version: extra.length + 1, name: 'broken', sql: 'CREATE TABLE x (a); SELECT * FROM nowhere' }];
  t.throws(() => migrate(db, broken));
  t.equal(db.pragma('user_version', { simple: true }), extra.length);
  t.equal((db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'x'").get() as { n: number }).n, 0, 'rolled back');

  // This build cannot open a database written by a newer one.
  const err = (() => {
    try {
      new SqliteStore(file);
    } catch (e) {
      return e as PorticoError;
    }
    return undefined;
  })();
  t.equal(err?.code, 'CONFIG_INVALID');
  t.match(err?.message, /newer than this build/);
});

t.test('openStore URLs', async (t) => {
  t.equal(sqlitePathFromUrl('sqlite:portico.db', '/data'), '/data/portico.db');
  t.equal(sqlitePathFromUrl('sqlite:/abs/x.db', '/data'), '/abs/x.db');
  t.equal(sqlitePathFromUrl('sqlite:///abs/x.db', '/data'), '/abs/x.db');
  t.equal(sqlitePathFromUrl('sqlite::memory:', '/data'), ':memory:');
  const pg = await rejectsWith(t, openStore('postgres://u:p@db/portico', dir), 'CONFIG_INVALID', 'postgres refused');
  t.equal(pg.message, 'store.url: postgres is not supported by this build yet; use "sqlite:portico.db" (the default)');
  await rejectsWith(t, openStore('postgresql://db/portico', dir), 'CONFIG_INVALID', 'postgresql refused');
  const other = await rejectsWith(t, openStore('mysql://u:secret@db/x', dir), 'CONFIG_INVALID', 'unknown scheme refused');
  t.notMatch(other.message, /secret/, 'credentials are not echoed');
  await rejectsWith(t, openStore('sqlite:', dir), 'CONFIG_INVALID', 'no file name');
});
