// Sealed UDP flows (docs/native-data-path.md), real relay and agent
// processes on loopback: a busy flow moves onto a sealed data connection
// and its datagrams still arrive intact both ways (sha256 of each), from
// the public port, counted exactly; so does one busy only from the app's
// side; empty datagrams count and keep a sealed flow alive; a burst that
// outruns the flow's open still seals it; a quiet flow stays on its stream; at
// most 32 flows per port are sealed and the rest still work; a cut data
// connection leaves the flow on its stream; expired flows leave no pair,
// no data connection and no sealed flow behind.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import type dgram from 'node:dgram';
import { eventually, startCluster, TARGET_HOST, type Cluster } from '../helpers/cluster.js';
import { bindUdp, closeUdp, request, startUdpTarget, type UdpTarget } from '../helpers/udp.js';
import type { Test } from 'tap';

const IDLE_MS = 1_500;
let cluster: Cluster;

t.before(async () => {
  cluster = await startCluster({ relay: { logLevel: 'debug', extraYaml: `udp: { flow_idle_timeout: ${IDLE_MS}ms }` }, server: { udp: true } });
});
t.teardown(async () => {
  await cluster?.stop();
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const tunnelPort = () => Number(cluster.relay.tunnelAddr.split(':')[1]);

async function udpStats(): Promise<Record<string, number>> {
  const view = await cluster.relay.api('GET', `/v1/servers/${cluster.server.id}`);
  return view.body.data.udp_stats ?? {};
}

/** The app on the cluster's `i`th public port (an echo unless `reply` says otherwise) and a client socket, both closed after the test. */
async function flowOn(t: Test, i: number, reply?: null): Promise<{ port: number; target: UdpTarget; sock: dgram.Socket }> {
  const port = cluster.server.ports[i]!;
  const target = await startUdpTarget(TARGET_HOST, port, reply === null ? null : undefined);
  t.teardown(() => target.close());
  const sock = await bindUdp('127.0.0.1');
  t.teardown(() => closeUdp(sock));
  return { port, target, sock };
}

/** Local ports of the agent's established TCP connections to the relay's tunnel port (the tunnel and data connections). */
function tunnelConns(): number[] {
  const out = execFileSync('ss', ['-Htn', 'state', 'established', `( dport = :${tunnelPort()} )`], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => Number(/:(\d+)\s/.exec(l.split(/\s+/)[2] + ' ')?.[1]))
    .filter((n) => n > 0);
}

/** Sends `ds` from `sock` to the public port in bursts (of 20, 2 ms apart by default), and collects the echoes (up to `ms` after the last). */
async function echoAll(sock: dgram.Socket, port: number, ds: Buffer[], ms = 1_500, burst = 20, gapMs = 2): Promise<Buffer[]> {
  const got: Buffer[] = [];
  const on = (m: Buffer, r: dgram.RemoteInfo) => {
    if (r.port === port) got.push(m);
  };
  sock.on('message', on);
  for (let i = 0; i < ds.length; i += burst) {
    for (const d of ds.slice(i, i + burst)) sock.send(d, port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, gapMs));
  }
  const deadline = Date.now() + ms;
  while (got.length < ds.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  sock.off('message', on);
  return got;
}

/** The number of flows sealed since `before`, once it reached `n` (the data connection is dialled after the 64th datagram, so it can land after the last echo) or after 5 s. */
async function sealedSince(before: Record<string, number>, n: number): Promise<number> {
  const count = async () => (await udpStats()).sealed_total - (before.sealed_total ?? 0);
  await eventually(async () => (await count()) >= n, 5_000).catch(() => undefined);
  return count();
}

/** Waits until every flow expired and nothing sealed is left. */
async function allExpired(): Promise<boolean> {
  return eventually(async () => {
    const s = await udpStats();
    return s.flows === 0 && s.sealed_flows === 0 && tunnelConns().length === 1;
  }, 4 * IDLE_MS + 5_000);
}

t.test('a busy flow is sealed: 5,000 datagrams each way intact, from the public port, counted exactly; then nothing left', async (t) => {
  const { port, target, sock } = await flowOn(t, 0);
  const before = await udpStats();
  const ds = Array.from({ length: 5_000 }, (_, i) => randomBytes(1 + ((i * 7919) % 1472)));
  const got = await echoAll(sock, port, ds);
  t.equal(got.length, ds.length, 'every echo came back (from the public port)');
  t.same(got.map(sha).sort(), ds.map(sha).sort(), 'each one intact (sha256)');
  t.equal(target.sources.size, 1, 'the app saw one peer for the whole flow (the same agent socket before and after sealing)');
  t.equal(target.received, ds.length, 'the app got each datagram once');
  t.equal(await sealedSince(before, 1), 1, 'the flow was sealed');
  t.equal((await udpStats()).sealed_flows, 1, 'and runs sealed now');
  t.equal(tunnelConns().length, 2, 'beside the tunnel, one data connection');
  t.ok(await allExpired(), 'after the idle timeout: no flow, no sealed flow, no data connection');
  const after = await udpStats();
  t.equal(after.datagrams_in - (before.datagrams_in ?? 0), ds.length, 'datagrams in counted exactly (stream and sealed parts)');
  t.equal(after.datagrams_out - (before.datagrams_out ?? 0), ds.length, 'datagrams out counted exactly');
  t.equal(after.drops - (before.drops ?? 0), 0, 'nothing dropped');
});

t.test('a quiet flow (under 64 datagrams) stays on its stream', async (t) => {
  const { port, sock } = await flowOn(t, 1);
  const before = await udpStats();
  for (let i = 0; i < 20; i++) t.equal((await request(sock, port, '127.0.0.1', Buffer.from(`q${i}`))).toString(), `q${i}`);
  const after = await udpStats();
  t.equal(after.sealed_total, before.sealed_total, 'not sealed');
  t.equal(tunnelConns().length, 1, 'no data connection');
  t.ok(await allExpired());
});

t.test('a flow busy the other way (the app streams after one request) is sealed too, and every datagram arrives', async (t) => {
  const { port, target, sock } = await flowOn(t, 4, null);
  const N = 1_000;
  const sent: Buffer[] = [];
  target.socket.on('message', (_m, r) => {
    void (async () => {
      for (let i = 0; i < N; i += 20) {
        for (let j = i; j < i + 20; j++) {
          const d = Buffer.from(`${j}:${randomBytes(16).toString('hex')}`);
          sent.push(d);
          target.socket.send(d, r.port, r.address);
        }
        await new Promise((res) => setTimeout(res, 2));
      }
    })();
  });
  const before = await udpStats();
  const got: Buffer[] = [];
  sock.on('message', (m) => got.push(m));
  sock.send(Buffer.from('go'), port, '127.0.0.1');
  await eventually(() => got.length >= N, 5_000).catch(() => undefined);
  t.equal(got.length, N, 'every datagram the app sent arrived');
  t.same(got.map(sha).sort(), sent.map(sha).sort(), 'intact');
  t.equal(await sealedSince(before, 1), 1, 'the flow was sealed');
  t.ok(await allExpired());
});

t.test('a sealed flow of empty datagrams is counted and kept alive by them (no expiry while they flow)', async (t) => {
  const { port, sock } = await flowOn(t, 5);
  const before = await udpStats();
  const burst = Array.from({ length: 100 }, () => Buffer.alloc(0));
  t.equal((await echoAll(sock, port, burst)).length, 100, '100 empty datagrams echoed');
  t.equal(await sealedSince(before, 1), 1, 'the flow was sealed');
  // One empty datagram every 400 ms for 3.2 s: over twice the idle timeout, never idle that long.
  let echoed = 0;
  for (let i = 0; i < 8; i++) {
    const next = new Promise((r) => setTimeout(r, 400));
    echoed += (await echoAll(sock, port, [Buffer.alloc(0)], 300)).length;
    await next;
  }
  t.equal(echoed, 8, 'each later one echoed');
  const during = await udpStats();
  t.equal(during.expired_flows - (before.expired_flows ?? 0), 0, 'the flow did not expire while empty datagrams kept coming');
  t.equal(during.sealed_flows, 1, 'still sealed');
  t.ok(await allExpired());
  const after = await udpStats();
  t.equal(after.datagrams_in - (before.datagrams_in ?? 0), 108, 'every empty datagram counted in');
  t.equal(after.datagrams_out - (before.datagrams_out ?? 0), 108, 'and out');
});

t.test('a burst that arrives before the agent accepted the flow gets it sealed once the flow opens', async (t) => {
  const { port, sock } = await flowOn(t, 6);
  const before = await udpStats();
  // 100 datagrams in one go: the relay reads them all before the agent's answer to the flow's open can arrive.
  const burst = Array.from({ length: 100 }, (_, i) => Buffer.from(`burst ${i}`));
  const got = await echoAll(sock, port, burst, 1_500, 100, 0);
  t.same(got.map(String).sort(), burst.map(String).sort(), 'every datagram echoed, intact');
  t.equal(await sealedSince(before, 1), 1, 'the flow was sealed without any later datagram');
  t.ok(await allExpired());
});

t.test('40 busy flows on one port: 32 are sealed, the rest stay on their streams, all intact', async (t) => {
  const { port } = await flowOn(t, 2);
  const socks = await Promise.all(Array.from({ length: 40 }, () => bindUdp('127.0.0.1')));
  t.teardown(() => Promise.all(socks.map(closeUdp)));
  const before = await udpStats();
  const results = await Promise.all(
    socks.map(async (s, i) => {
      const ds = Array.from({ length: 150 }, (_, j) => Buffer.from(`${i}:${j}:${randomBytes(8).toString('hex')}`));
      // 40 flows at once: 5 datagrams per flow every 10 ms (20,000/s in all) keeps every buffer on the way from overflowing.
      const got = await echoAll(s, port, ds, 3_000, 5, 10);
      return got.length === ds.length && got.map(sha).sort().join() === ds.map(sha).sort().join() ? 'ok' : `${got.length}/${ds.length}`;
    }),
  );
  t.same(results.filter((r) => r !== 'ok'), [], 'every flow got every echo intact');
  const sealed = await sealedSince(before, 32);
  t.comment(`sealed ${sealed}, drops ${(await udpStats()).drops - (before.drops ?? 0)}`);
  t.equal(sealed, 32, '32 flows sealed (the per-port limit)');
  t.ok(await allExpired(), 'all gone after the idle timeout');
});

t.test('a cut data connection: the flow goes on over its stream', async (t) => {
  const { port, target, sock } = await flowOn(t, 3);
  const tunnel = tunnelConns();
  const first = Array.from({ length: 200 }, (_, i) => Buffer.from(`a${i}`));
  t.equal((await echoAll(sock, port, first)).length, 200, 'first 200 echoed');
  const data = await eventually(() => tunnelConns().find((p) => !tunnel.includes(p)), 5_000);
  t.ok(data, 'the flow has a data connection');
  execFileSync('ss', ['-K', 'dst', '127.0.0.1', 'dport', '=', String(tunnelPort()), 'sport', '=', String(data)], { stdio: 'ignore' });
  t.ok(await eventually(async () => (await udpStats()).sealed_flows === 0, 5_000), 'the sealed flow ended');
  const second = Array.from({ length: 200 }, (_, i) => Buffer.from(`b${i}`));
  const got = await echoAll(sock, port, second);
  t.equal(got.length, 200, 'the next 200 are echoed over the stream');
  t.same(got.map(String).sort(), second.map(String).sort(), 'intact');
  t.equal(target.sources.size, 1, 'the app still sees the same peer');
  t.ok(await allExpired());
});
