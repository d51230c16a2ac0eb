// --dev SNI certificates (relay/vhost/dev-sni.ts): any one-label name under
// the dev domain gets a leaf for exactly that name, signed by the dev CA
// (so an unknown host reaches the relay's 404 with a verified certificate);
// names that are not a DNS label get the wildcard context; at most 16
// leaves are minted at once (more get the wildcard context) and a
// repeated name reuses its leaf.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { ensureDevCerts } from '../../relay/tls/dev-certs.js';
import { devSniCallback, needsDevSni } from '../../relay/vhost/dev-sni.js';
import { createLogger } from '../../shared/logging.js';

const dir = mkdtempSync(join(tmpdir(), 'portico-devsni-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
await ensureDevCerts(dir, 'localhost', 'connect01.localhost');
const sni = devSniCallback({ dataDir: dir, domain: 'localhost', contextOptions: {}, logger: createLogger({ name: 'test', level: 'silent' }) });
const ask = (name: string) =>
  new Promise<tls.SecureContext | undefined>((resolve, reject) => sni(name, (err, ctx) => (err ? reject(err) : resolve(ctx))));

t.test('one-label domains need it; dotted ones do not', async (t) => {
  t.equal(needsDevSni('localhost'), true);
  t.equal(needsDevSni('example.com'), false);
});

t.test('an unknown one-label name gets a leaf for exactly that name, signed by the dev CA', async (t) => {
  const ctx = await ask('nobody-here.localhost');
  t.ok(ctx, 'a context');
  // Serve it and look at what a client receives.
  const server = tls.createServer({ SNICallback: sni, ...readPair() }, (s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as { port: number }).port;
  const peer = await new Promise<tls.PeerCertificate>((resolve, reject) => {
    const c = tls.connect({ host: '127.0.0.1', port, servername: 'nobody-here.localhost', ca: readFileSync(join(dir, 'ca.pem')) }, () => {
      resolve(c.getPeerCertificate());
      c.end();
    });
    c.on('error', reject);
  });
  t.equal(peer.subject.CN, 'nobody-here.localhost');
  t.match(peer.subjectaltname, /DNS:nobody-here\.localhost/);
  t.ok(new X509Certificate(peer.raw).checkIssued(new X509Certificate(readFileSync(join(dir, 'ca.pem')))), 'issued by the dev CA');
});

t.test('not a DNS label, or not under the domain: the wildcard context (undefined)', async (t) => {
  for (const name of ['a.b.localhost', '-bad.localhost', 'under_score.localhost', 'example.org', `${'x'.repeat(64)}.localhost`]) {
    t.equal(await ask(name), undefined, name);
  }
});

t.test('a repeated name reuses its leaf; at most 16 are minted at once', async (t) => {
  const first = await ask('again.localhost');
  t.equal(await ask('again.localhost'), first, 'same context for the same name');
  const names = Array.from({ length: 24 }, (_, i) => `burst-${i}.localhost`);
  const got = await Promise.all(names.map((n) => ask(n)));
  const minted = got.filter((c) => c !== undefined).length;
  t.equal(minted, 16, `16 minted, ${24 - minted} answered with the wildcard while the burst was minting`);
  t.ok(await ask('burst-23.localhost'), 'once the burst is done, the rest are minted on their next hello');
});

function readPair(): { cert: string; key: string } {
  return { cert: readFileSync(join(dir, 'relay.crt'), 'utf8'), key: readFileSync(join(dir, 'relay.key'), 'utf8') };
}
