// The agent refuses a sealed id the relay names twice in one session
// (agent/connect.ts sealedPath, shared/sealed/recent-ids.ts): a stream's keys
// and nonces come from its id, so a repeat would seal different bytes under
// the same key and nonce. Checked on a real TLS connection on loopback; the
// memory is bounded (two generations of ids).
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { once } from 'node:events';
import { ensureDevCerts } from '../../relay/tls/dev-certs.js';
import { RecentIds } from '../../shared/sealed/recent-ids.js';
import { newSealedId, streamSecrets } from '../../shared/sealed/keys.js';
import { sealedPath } from '../../agent/connect.js';
import { isPorticoError } from '../../shared/errors.js';
import type { SealedEngine } from '../../shared/sealed/engine.js';

t.test('RecentIds: a repeat is refused; the last perGeneration ids are always remembered, never more than twice that', async (t) => {
  const ids = new RecentIds(3);
  const made = Array.from({ length: 8 }, () => newSealedId());
  t.ok(ids.add(made[0]!), 'a new id');
  t.notOk(ids.add(Buffer.from(made[0]!)), 'the same bytes again (another Buffer)');
  for (const id of made.slice(1, 4)) t.ok(ids.add(id));
  t.notOk(ids.add(made[0]!), 'still remembered after a generation turned');
  for (const id of made.slice(4, 8)) t.ok(ids.add(id));
  t.ok(ids.size <= 6, `bounded: ${ids.size} ids held`);
  for (const id of made.slice(5, 8)) t.notOk(ids.add(id), 'the last three are remembered');
  t.ok(ids.add(made[0]!), 'the oldest was let go');
});

t.test('sealedPath refuses an id given twice on one TLS session with PROTOCOL_ERROR, and the secrets match the relay side', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portico-ids-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const certs = await ensureDevCerts(dir, 'localhost', 'connect01.localhost');
  const server = tls.createServer({ cert: certs.cert, key: certs.key });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const accepted = once(server, 'secureConnection') as Promise<[tls.TLSSocket]>;
  const agentSide = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: certs.ca });
  const [[relaySide]] = await Promise.all([accepted, once(agentSide, 'secureConnect')]);
  t.teardown(async () => {
    agentSide.destroy();
    relaySide.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  // The engine is never touched by secrets(); the path only keeps it for the streams.
  const path = sealedPath({} as SealedEngine, agentSide);
  const id = newSealedId();
  const first = path.secrets(id);
  t.same(first.proof, streamSecrets(relaySide, id).proof, 'both ends derive the same secrets');
  let err: unknown = null;
  try {
    path.secrets(Buffer.from(id));
  } catch (e) {
    err = e;
  }
  t.ok(isPorticoError(err) && err.code === 'PROTOCOL_ERROR', 'the second time: PROTOCOL_ERROR');
  t.match((err as Error).message, id.toString('hex'), 'naming the id');
  t.ok(path.secrets(newSealedId()).proof.length > 0, 'another id still works');
  path.pool.close(); // (its sweep timer)
});
