// The sealed data path end to end (docs/native-data-path.md), on real relay
// and agent processes: raw TCP bytes go over sealed data connections by
// default, byte for byte both ways, counted exactly in /metrics; an agent
// without the engine and a relay with tunnel.sealed_data off ride the mux;
// forged and stray connections on the tunnel port are refused without
// touching a transfer in flight; a killed agent resets its clients.
import t, { type Test } from 'tap';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, eventually, startAgent, startCluster, TARGET_HOST, type Cluster } from '../helpers/cluster.js';
import { exchange, startEcho, startSourceSink } from '../helpers/targets.js';
import { sealedEngine, sealedProblem } from '../../shared/sealed/engine.js';

const MiB = 1024 * 1024;

if (!sealedEngine()) {
  t.test('sealed data path', { skip: `engine unavailable: ${sealedProblem()}` }, async () => undefined);
} else {
  let cluster: Cluster;
  t.before(async () => {
    cluster = await startCluster();
  });
  t.teardown(async () => {
    await cluster?.stop();
  });

  /** Sum of a metric's samples whose labels contain every `match` pair. */
  const metric = async (name: string, match: Record<string, string> = {}): Promise<number> => {
    const res = await fetch(`${cluster.relay.apiUrl}/metrics`, { headers: { authorization: `Bearer ${cluster.relay.adminKey}` } });
    const text = await res.text();
    let sum = 0;
    for (const line of text.split('\n')) {
      if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
      if (!Object.entries(match).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return sum;
  };
  const accepted = () => metric('portico_sealed_connections_total', { result: 'accepted' });
  const reused = () => metric('portico_sealed_connections_total', { result: 'reused' });
  /** Streams that took a sealed data connection, new or reused. */
  const sealedStreams = async () => (await accepted()) + (await reused());
  const openStreams = async (serverId: string) => (await cluster.relay.api('GET', `/v1/servers/${serverId}`)).body.data.open_streams as number;

  /** TIME_WAIT sockets (IPv4, /proc/net/tcp) whose local port, or remote port, is `port`. */
  const timeWait = (port: number): { local: number; remote: number } => {
    const hex = port.toString(16).toUpperCase().padStart(4, '0');
    let local = 0;
    let remote = 0;
    for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] !== '06') continue;
      if (f[1]?.endsWith(`:${hex}`)) local++;
      if (f[2]?.endsWith(`:${hex}`)) remote++;
    }
    return { local, remote };
  };

  /** Runs one 2-way transfer of `n` bytes through `port` (a source-sink target on TARGET_HOST). */
  async function transfer(port: number, n: number) {
    let server!: { received: number; receivedSha: string; sent: number; sentSha: string };
    let done!: () => void;
    const got = new Promise<void>((res) => (done = res));
    const target = await startSourceSink(TARGET_HOST, port, n, (r) => {
      server = r;
      done();
    });
    t.teardown(() => target.close());
    const client = await exchange('127.0.0.1', port, n);
    await got;
    return { client, server };
  }

  t.test('raw TCP goes sealed by default: 64 MiB each way byte for byte, counted exactly', async (t) => {
    t.match(cluster.relay.out.lines.join('\n') + '', /relay ready/);
    const port = cluster.server.ports[0]!;
    const before = { accepted: await sealedStreams(), in: await metric('portico_bytes_total', { server: cluster.server.id, direction: 'in' }), out: await metric('portico_bytes_total', { server: cluster.server.id, direction: 'out' }) };
    const { client, server } = await transfer(port, 64 * MiB);
    t.equal(server.received, 64 * MiB, 'app received 64 MiB');
    t.equal(server.receivedSha, client.sentSha, 'client -> app sha256 equal');
    t.equal(client.received, 64 * MiB, 'client received 64 MiB');
    t.equal(client.receivedSha, server.sentSha, 'app -> client sha256 equal');
    t.equal((await sealedStreams()) - before.accepted, 1, 'one sealed data connection carried it');
    await eventually(async () => (await openStreams(cluster.server.id)) === 0);
    t.equal(await metric('portico_bytes_total', { server: cluster.server.id, direction: 'in' }) - before.in, 64 * MiB, 'bytes in counted exactly');
    t.equal(await metric('portico_bytes_total', { server: cluster.server.id, direction: 'out' }) - before.out, 64 * MiB, 'bytes out counted exactly');
  });

  t.test('100 concurrent echoes of 256 KiB: sealed or, past 16 new data connections at once, on the mux; streams back to 0', async (t) => {
    const port = cluster.server.ports[1]!;
    const echo = await startEcho(TARGET_HOST, port);
    t.teardown(() => echo.close());
    const before = await sealedStreams();
    const results = await Promise.all(Array.from({ length: 100 }, () => exchange('127.0.0.1', port, 256 * 1024)));
    t.equal(results.filter((r) => r.received !== 256 * 1024 || r.receivedSha !== r.sentSha).length, 0, 'every echo intact');
    const sealedNow = (await sealedStreams()) - before;
    t.ok(sealedNow >= 16 && sealedNow <= 100, `${sealedNow} took a data connection, the rest the mux`);
    t.ok(await eventually(async () => (await openStreams(cluster.server.id)) === 0), 'open streams back to 0');
    // 100 came back idle; the relay keeps 64 and closes the rest itself, so nothing of it sits in
    // TIME_WAIT on the agent's ephemeral ports.
    t.equal(timeWait(Number(cluster.relay.tunnelAddr.split(':')[1])).remote, 0, "no TIME_WAIT on the agent's side");
  });

  t.test('sequential connections reuse one data connection; each still gets its own keys', async (t) => {
    const port = cluster.server.ports[1]!;
    const echo = await startEcho(TARGET_HOST, port);
    t.teardown(() => echo.close());
    const before = { accepted: await accepted(), reused: await reused() };
    for (let i = 0; i < 30; i++) {
      const r = await exchange('127.0.0.1', port, 64 * 1024 + i);
      if (r.receivedSha !== r.sentSha || r.received !== 64 * 1024 + i) t.fail(`echo ${i} damaged`);
    }
    const after = { accepted: await accepted(), reused: await reused() };
    t.equal(after.accepted - before.accepted + after.reused - before.reused, 30, '30 streams');
    t.ok(after.reused - before.reused >= 29, `reused ${after.reused - before.reused} times`);
    // Interleaved with a reset: a failed pair's connection is not reused, the next stream still works.
    const app = net.createServer((s) => s.resetAndDestroy());
    await new Promise<void>((r) => app.listen(cluster.server.ports[6]!, TARGET_HOST, r));
    t.teardown(() => app.close());
    const cut = await new Promise<string>((resolve) => {
      const s = net.connect(cluster.server.ports[6]!, '127.0.0.1', () => s.write('x'));
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      s.on('close', () => resolve('close'));
    });
    t.ok(cut === 'ECONNRESET' || cut === 'close', `the reset app's client: ${cut}`);
    const r = await exchange('127.0.0.1', port, 100_000);
    t.equal(r.receivedSha, r.sentSha, 'the next stream is intact');
  });

  t.test('nothing listening inside: the client is reset at once, like a closed port', async (t) => {
    const port = cluster.server.ports[2]!;
    const started = Date.now();
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', resolve);
      s.on('close', () => resolve(null));
      s.on('connect', () => s.write('hello'));
    });
    t.ok(err === null || err.code === 'ECONNRESET', `reset or closed (${err?.code ?? 'close'})`);
    t.ok(Date.now() - started < 5_000, 'without waiting for the open timeout');
  });

  t.test('forged and stray connections on the tunnel port are refused; a transfer in flight is untouched', async (t) => {
    const port = cluster.server.ports[3]!;
    const refusedBefore = await metric('portico_sealed_connections_total', { result: 'refused' });
    const flight = transfer(port, 48 * MiB);
    const [host, tport] = cluster.relay.tunnelAddr.split(':') as [string, string];
    const attempts = [
      Buffer.concat([Buffer.from('PSD1'), randomBytes(32)]), // unknown id
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), // neither TLS nor a preamble
      Buffer.concat([Buffer.from('PSD1'), randomBytes(64)]), // unknown id, units after it
    ];
    const closed = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        new Promise<boolean>((resolve) => {
          const s = net.connect(Number(tport), host, () => s.write(attempts[i % attempts.length]!));
          s.on('error', () => undefined);
          s.resume();
          const timer = setTimeout(() => (s.destroy(), resolve(false)), 5_000);
          s.on('close', () => (clearTimeout(timer), resolve(true)));
        }),
      ),
    );
    t.equal(closed.filter(Boolean).length, 30, 'the relay closed every one');
    t.equal((await metric('portico_sealed_connections_total', { result: 'refused' })) - refusedBefore, 30, 'and counted them');
    const { client, server } = await flight;
    t.equal(server.receivedSha, client.sentSha, 'transfer in flight: client -> app intact');
    t.equal(client.receivedSha, server.sentSha, 'transfer in flight: app -> client intact');
  });

  /** Three rounds of 40 concurrent echoes of `size` through `c`'s port `port`: every one intact; then its sealed-connection counts as a comment. */
  async function echoRounds(t: Test, c: Cluster, size: number): Promise<void> {
    const port = c.server.ports[0]!;
    const echo = await startEcho(TARGET_HOST, port);
    t.teardown(() => echo.close());
    for (let round = 0; round < 3; round++) {
      const results = await Promise.all(Array.from({ length: 40 }, () => exchange('127.0.0.1', port, size)));
      t.equal(results.filter((r) => r.received !== size || r.receivedSha !== r.sentSha).length, 0, `round ${round}: every echo intact`);
    }
    const res = await fetch(`${c.relay.apiUrl}/metrics`, { headers: { authorization: `Bearer ${c.relay.adminKey}` } });
    t.comment((await res.text()).split('\n').filter((l) => l.startsWith('portico_sealed_connections_total{')).join('; '));
  }

  t.test('data connections refused by the relay (tunnel.max_pending_per_ip: 1): those streams ride the mux, every byte intact', async (t) => {
    const other = await startCluster({ relay: { tunnel: 'max_pending_per_ip: 1' } });
    t.teardown(() => other.stop());
    await echoRounds(t, other, 128 * 1024);
  });

  t.test('replicas, the oldest without the engine: a sealed replica falling back still gets every uploaded byte', async (t) => {
    // (Found in review: the relay chose how to read the client by the server's oldest agent, and a
    // connection given to a sealed replica that then fell back to the mux lost its upload.)
    const other = await startCluster({ relay: { tunnel: 'max_pending_per_ip: 1' }, agent: { env: { PORTICO_NATIVE: '0' } } });
    t.teardown(() => other.stop());
    const replica = await startAgent(other.relay, other.server.token);
    t.teardown(() => replica.stop());
    await echoRounds(t, other, 64 * 1024);
  });

  t.test('an agent without the engine (PORTICO_NATIVE=0) rides the mux, same bytes', async (t) => {
    const server = await createServer(cluster.relay);
    const agent = await startAgent(cluster.relay, server.token, { env: { PORTICO_NATIVE: '0' } });
    t.teardown(() => agent.stop());
    const before = await sealedStreams();
    const { client, server: app } = await transfer(server.ports[0]!, 16 * MiB);
    t.equal(app.receivedSha, client.sentSha);
    t.equal(client.receivedSha, app.sentSha);
    t.equal(await sealedStreams(), before, 'no sealed connection was used');
  });

  t.test('a relay with tunnel.sealed_data: false keeps every stream on the mux', async (t) => {
    const other = await startCluster({ relay: { tunnel: 'sealed_data: false' } });
    t.teardown(() => other.stop());
    const port = other.server.ports[0]!;
    const echo = await startEcho(TARGET_HOST, port);
    t.teardown(() => echo.close());
    const r = await exchange('127.0.0.1', port, 4 * MiB);
    t.equal(r.receivedSha, r.sentSha);
    const res = await fetch(`${other.relay.apiUrl}/metrics`, { headers: { authorization: `Bearer ${other.relay.adminKey}` } });
    t.notMatch(await res.text(), /portico_sealed_connections_total\{result="accepted"\} [1-9]/, 'no sealed connection accepted');
  });

  t.test('a killed agent resets its clients (a cut download never looks complete)', async (t) => {
    const port = cluster.server.ports[4]!;
    const app = net.createServer((s) => {
      s.on('error', () => undefined);
      s.write(randomBytes(MiB)); // then hold the connection open
    });
    await new Promise<void>((r) => app.listen(port, TARGET_HOST, r));
    t.teardown(() => app.close());
    const outcome = await new Promise<{ got: number; err?: string }>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      let got = 0;
      s.on('data', (c: Buffer) => {
        got += c.length;
        if (got === MiB) void cluster.agent.stop('SIGKILL');
      });
      s.on('error', (err: NodeJS.ErrnoException) => resolve({ got, err: err.code ?? '' }));
      s.on('end', () => resolve({ got }));
    });
    t.equal(outcome.got, MiB, 'what was sent before the kill arrived');
    t.equal(outcome.err, 'ECONNRESET', 'then a reset, not a clean end');
    cluster.agent = await startAgent(cluster.relay, cluster.server.token);
    t.ok(await eventually(async () => (await openStreams(cluster.server.id)) === 0), 'open streams back to 0');
  });
}
