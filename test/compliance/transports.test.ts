// One suite, run once per transport (TLS and the WebSocket fallback): the same
// real relay and agent processes and the same byte-for-byte checks.
import t from 'tap';
import tls from 'node:tls';
import { readFileSync, rmSync } from 'node:fs';
import { createServer, eventually, startAgent, startRelay, TARGET_HOST } from '../helpers/cluster.js';
import { exchange, halfCloseRequest, refused, startEcho } from '../helpers/targets.js';

const MiB = 1024 * 1024;

for (const transport of ['tls', 'websocket'] as const) {
  t.test(`transport ${transport}`, async (t) => {
    const relay = await startRelay();
    t.teardown(async () => {
      await relay.stop();
      rmSync(relay.dataDir, { recursive: true, force: true });
    });
    const server = await createServer(relay);
    const relayAddr = transport === 'tls' ? relay.tunnelAddr : `wss://127.0.0.1:${relay.ports.https}/_tunnel`;
    // server_name: the dev certificate names connect01.localhost / localhost, not the IP we dial.
    const agent = await startAgent(relay, server.token, { yaml: `server_name: localhost`, args: ['--relay', relayAddr] });
    t.teardown(() => agent.stop());
    const echo = await startEcho(TARGET_HOST, server.ports[0]!);
    t.teardown(() => echo.close());
    const port = server.ports[0]!;

    if (transport === 'tls') {
      await t.test('TLS 1.3 with AES-128-GCM preferred by the relay; TLS 1.1 refused', async (t) => {
        const [host, p] = relay.tunnelAddr.split(':') as [string, string];
        const cipher = await new Promise<string>((resolve, reject) => {
          const s = tls.connect({ host, port: Number(p), ca: readFileSync(relay.caPath), servername: 'localhost' }, () => {
            resolve(`${s.getProtocol()} ${s.getCipher().name}`);
            s.destroy();
          });
          s.on('error', reject);
        });
        t.equal(cipher, 'TLSv1.3 TLS_AES_128_GCM_SHA256');
        const old = await new Promise<string>((resolve) => {
          const s = tls.connect({ host, port: Number(p), ca: readFileSync(relay.caPath), servername: 'localhost', maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }, () => resolve('connected'));
          s.on('error', () => resolve('refused'));
        });
        t.equal(old, 'refused');
      });
    }

    await t.test('64 MiB each way, sha256 equal', async (t) => {
      const r = await exchange('127.0.0.1', port, 64 * MiB);
      t.equal(r.received, 64 * MiB);
      t.equal(r.receivedSha, r.sentSha);
    });

    await t.test('50 concurrent echoes of 256 KiB', async (t) => {
      const rs = await Promise.all(Array.from({ length: 50 }, () => exchange('127.0.0.1', port, 256 * 1024)));
      t.equal(rs.filter((r) => r.receivedSha !== r.sentSha || r.received !== 256 * 1024).length, 0);
    });

    await t.test('half-close', async (t) => {
      const reply = await halfCloseRequest('127.0.0.1', port, 'ping');
      t.equal(reply, 'ping', 'echoed after our FIN, then a clean end');
    });

    await t.test('the relay shows which transport the agent used; nothing listening -> reset', async (t) => {
      const view = await relay.api('GET', `/v1/servers/${server.id}`);
      t.equal(view.body.data.online, true);
      t.equal(view.body.data.transport, transport, `the API shows the agent on ${transport}`);
      t.ok(await refused('127.0.0.1', server.ports[1]!), 'a port with nothing behind it is reset');
      await eventually(async () => (await relay.api('GET', `/v1/servers/${server.id}`)).body.data.open_streams === 0);
      t.pass('all data streams freed');
    });
  });
}
