// Raw TCP through the tunnel: bulk both ways, many concurrent echoes, half-close.
import t from 'tap';
import net from 'node:net';
import { eventually, startAgent, startCluster, TARGET_HOST, type Cluster } from '../helpers/cluster.js';
import { exchange, halfCloseRequest, refused, startEcho, startSourceSink, writeRandom } from '../helpers/targets.js';
import { rss } from '../helpers/proc-mem.js';

const MiB = 1024 * 1024;
let cluster: Cluster;

t.before(async () => {
  cluster = await startCluster();
});
t.teardown(async () => {
  await cluster?.stop();
});

t.test('256 MiB each way through one public port, sha256 equal at both ends', async (t) => {
  const port = cluster.server.ports[0]!;
  let serverSide!: { received: number; receivedSha: string; sent: number; sentSha: string };
  const gotServer = new Promise<void>((res) => {
    void startSourceSink(TARGET_HOST, port, 256 * MiB, (r) => {
      serverSide = r;
      res();
    }).then((target) => t.teardown(() => target.close()));
  });
  await new Promise((r) => setTimeout(r, 100));
  const client = await exchange('127.0.0.1', port, 256 * MiB);
  await gotServer;
  t.equal(client.sent, 256 * MiB, 'client sent 256 MiB');
  t.equal(serverSide.received, 256 * MiB, 'server received 256 MiB');
  t.equal(serverSide.receivedSha, client.sentSha, 'client -> server sha256 equal');
  t.equal(client.received, 256 * MiB, 'client received 256 MiB');
  t.equal(client.receivedSha, serverSide.sentSha, 'server -> client sha256 equal');
});

t.test('200 concurrent connections each echo 1 MiB intact', async (t) => {
  const port = cluster.server.ports[1]!;
  const echo = await startEcho(TARGET_HOST, port);
  t.teardown(() => echo.close());
  const results = await Promise.all(Array.from({ length: 200 }, () => exchange('127.0.0.1', port, MiB)));
  const bad = results.filter((r) => r.received !== MiB || r.receivedSha !== r.sentSha);
  t.equal(bad.length, 0, 'every echo came back byte for byte');
  t.equal(echo.accepted, 200, 'the target saw 200 connections');
  const streams = await eventually(async () => {
    const r = await cluster.relay.api('GET', `/v1/servers/${cluster.server.id}`);
    return r.body.data.open_streams === 0 ? 'zero' : '';
  });
  t.equal(streams, 'zero', 'every data stream was closed and freed on the relay afterwards');
});

t.test('public listeners exist only while the agent is online', async (t) => {
  const port = cluster.server.ports[5]!;
  const echo = await startEcho(TARGET_HOST, port);
  t.teardown(() => echo.close());
  const before = await exchange('127.0.0.1', port, 1024);
  t.equal(before.receivedSha, before.sentSha, 'open while online');
  await cluster.agent.stop();
  t.ok(await eventually(() => refused('127.0.0.1', port, 1000)), 'connection refused once the agent is gone');
  cluster.agent = await startAgent(cluster.relay, cluster.server.token);
  const after = await exchange('127.0.0.1', port, 1024);
  t.equal(after.receivedSha, after.sentSha, 'open again after the agent reconnects');
});

t.test('half-close: client ends its side, server still replies, both see a clean end', async (t) => {
  const port = cluster.server.ports[2]!;
  let serverSawEnd = false;
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => {
      serverSawEnd = true;
      // Reply only after the client's FIN arrived: proves the write side stayed open.
      setTimeout(() => s.end(`got ${Buffer.concat(chunks).length} bytes`), 100);
    });
  });
  await new Promise<void>((r) => server.listen(port, TARGET_HOST, r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const reply = await halfCloseRequest('127.0.0.1', port, 'hello half-close');
  t.ok(serverSawEnd, 'server saw the client FIN');
  t.equal(reply, 'got 16 bytes', 'reply arrived after the client half-closed');
});

t.test('a reset crosses the tunnel as a reset, not a clean end, both ways', async (t) => {
  const port = cluster.server.ports[3]!;
  let appSaw: 'end' | 'error' | null = null;
  let appGot = 0;
  let mode: 'app-resets' | 'client-resets' = 'app-resets';
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', (d: Buffer) => (appGot += d.length));
    s.on('end', () => (appSaw ??= 'end'));
    s.on('error', () => (appSaw ??= 'error'));
    if (mode === 'app-resets') {
      // 100 bytes, then the app crashes mid-response.
      s.write(Buffer.alloc(100, 1), () => setTimeout(() => s.resetAndDestroy(), 50));
    }
  });
  await new Promise<void>((r) => server.listen(port, TARGET_HOST, r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));

  const outcome = await new Promise<{ bytes: number; how: string }>((resolve) => {
    const c = net.connect({ host: '127.0.0.1', port });
    let bytes = 0;
    c.on('data', (d: Buffer) => (bytes += d.length));
    c.on('end', () => resolve({ bytes, how: 'end' }));
    c.on('error', (e: NodeJS.ErrnoException) => resolve({ bytes, how: e.code ?? 'error' }));
  });
  t.equal(outcome.bytes, 100, 'the bytes sent before the crash arrived');
  t.equal(outcome.how, 'ECONNRESET', 'the client sees a reset, so a cut-short download does not look complete');

  mode = 'client-resets';
  appSaw = null;
  const c = net.connect({ host: '127.0.0.1', port });
  c.on('error', () => undefined);
  await new Promise((r) => c.once('connect', r));
  c.write('partial request');
  await eventually(() => appGot === 'partial request'.length, 3_000); // the app has the connection and the bytes
  c.resetAndDestroy();
  await eventually(() => appSaw !== null, 3_000);
  t.equal(appSaw, 'error', 'the app sees the client reset as an error, not a clean end');
});

t.test('a client that stops reading keeps memory bounded; other streams keep flowing', async (t) => {
  const slowPort = cluster.server.ports[3]!;
  const fastPort = cluster.server.ports[4]!;
  const GiB = 1024 * MiB;
  let src: net.Socket | null = null;
  const source = net.createServer((s) => {
    src = s;
    s.on('error', () => undefined);
    void writeRandom(s, GiB, MiB);
  });
  await new Promise<void>((r) => source.listen(slowPort, TARGET_HOST, r));
  const echo = await startEcho(TARGET_HOST, fastPort);
  t.teardown(async () => {
    await echo.close();
    await new Promise<void>((r) => source.close(() => r()));
  });
  const relayPid = cluster.relay.child.pid!;
  const agentPid = cluster.agent.child.pid!;
  const before = { relay: rss(relayPid), agent: rss(agentPid) };
  const stuck = net.connect({ host: '127.0.0.1', port: slowPort });
  stuck.pause(); // never reads
  await new Promise((r) => stuck.once('connect', r));
  await new Promise((r) => setTimeout(r, 3000));
  const during = { relay: rss(relayPid), agent: rss(agentPid) };
  const writtenDuring = src!.bytesWritten;
  // Another stream on the same tunnel still moves 16 MiB intact.
  const other = await exchange('127.0.0.1', fastPort, 16 * MiB);
  t.equal(other.receivedSha, other.sentSha, 'a concurrent stream completes intact');
  await new Promise((r) => setTimeout(r, 1000));
  const after = { relay: rss(relayPid), agent: rss(agentPid) };
  const writtenAfter = src!.bytesWritten;
  stuck.destroy();
  const growth = Math.max(after.relay - before.relay, after.agent - before.agent, during.relay - before.relay, during.agent - before.agent);
  t.comment(`RSS growth relay ${((after.relay - before.relay) / MiB).toFixed(1)} MiB, agent ${((after.agent - before.agent) / MiB).toFixed(1)} MiB while 1 GiB was offered`);
  t.ok(writtenAfter < GiB && writtenAfter - writtenDuring < 8 * MiB, `the source was stalled by backpressure: ${(writtenDuring / MiB).toFixed(1)} MiB written after 3 s, ${(writtenAfter / MiB).toFixed(1)} MiB seconds later`);
  t.ok(growth < 96 * MiB, `relay and agent grew by less than 96 MiB (max ${(growth / MiB).toFixed(1)} MiB)`);
});



