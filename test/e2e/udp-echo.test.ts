// UDP through the tunnel: 10,000 datagrams of random sizes from 50 concurrent
// client sockets, each echoed intact to its own sender (no cross-talk), then
// the same over IPv6 and IPv4 on a dual-stack ('::') relay.
import t, { type Test } from 'tap';
import dgram from 'node:dgram';
import { randomBytes, randomInt } from 'node:crypto';
import { startCluster, TARGET_HOST, type Cluster } from '../helpers/cluster.js';
import { bindUdp, closeUdp, request, startUdpTarget } from '../helpers/udp.js';

const CLIENTS = 50;
const TOTAL = 10_000;
const PER_CLIENT = TOTAL / CLIENTS;
/** Datagrams each client may have in flight: paces the senders so loopback buffers never overflow. */
const WINDOW = 8;
/** A datagram not echoed within this long is counted lost (and its window slot freed). */
const LOSS_TIMEOUT_MS = 3_000;

let cluster: Cluster;
t.before(async () => {
  cluster = await startCluster({ server: { udp: true } });
});
t.teardown(async () => {
  await cluster?.stop();
});

/**
 * Payload of datagram `seq` of client `c`: byte 0 is the client index (so a
 * reply that reached the wrong socket is caught even for 1-byte datagrams),
 * bytes 1..4 the sequence number when they fit, then random bytes.
 */
function payload(c: number, seq: number, size: number): Buffer {
  const b = size > 5 ? randomBytes(size) : Buffer.alloc(size);
  b[0] = c;
  if (size > 5) b.writeUInt32BE(seq, 1);
  else for (let i = 1; i < size; i++) b[i] = (seq >> (8 * (i - 1))) & 0xff;
  return b;
}

interface ClientResult {
  sent: number;
  echoed: number;
  lost: Buffer[];
  crossTalk: number;
  corrupt: number;
  fromWrongAddress: number;
  sizes: { min: number; max: number };
}

/** One client socket: PER_CLIENT datagrams, at most WINDOW outstanding, every reply checked against what this socket sent. */
async function runClient(c: number, host: string, port: number): Promise<ClientResult> {
  const sock = await bindUdp(host.includes(':') ? '::1' : '127.0.0.1', 0, 1024 * 1024);
  const outstanding = new Map<string, { buf: Buffer; timer: NodeJS.Timeout }>();
  const r: ClientResult = { sent: 0, echoed: 0, lost: [], crossTalk: 0, corrupt: 0, fromWrongAddress: 0, sizes: { min: Infinity, max: 0 } };
  let next = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((res) => (resolveDone = res));
  const pump = () => {
    while (outstanding.size < WINDOW && next < PER_CLIENT) {
      const size = next === 0 ? 1 : next === 1 ? 1472 : randomInt(1, 1473);
      const buf = payload(c, next++, size);
      const key = buf.toString('base64');
      // Tiny payloads can repeat (1 byte = only the client index): such a key is sent only when free.
      if (outstanding.has(key)) {
        next--;
        break;
      }
      r.sizes.min = Math.min(r.sizes.min, size);
      r.sizes.max = Math.max(r.sizes.max, size);
      const timer = setTimeout(() => {
        outstanding.delete(key);
        r.lost.push(buf);
        pump();
      }, LOSS_TIMEOUT_MS);
      outstanding.set(key, { buf, timer });
      r.sent++;
      sock.send(buf, port, host);
    }
    if (outstanding.size === 0 && next >= PER_CLIENT) resolveDone();
  };
  sock.on('message', (msg, rinfo) => {
    if (rinfo.port !== port) r.fromWrongAddress++;
    if (msg.length === 0 || msg[0] !== c) {
      r.crossTalk++;
      return;
    }
    const key = msg.toString('base64');
    const o = outstanding.get(key);
    if (!o) {
      r.corrupt++;
      return;
    }
    clearTimeout(o.timer);
    outstanding.delete(key);
    r.echoed++;
    pump();
  });
  pump();
  await done;
  await closeUdp(sock);
  return r;
}

async function echoRound(t: Test, host: string, port: number, clients: number): Promise<void> {
  const started = Date.now();
  const results = await Promise.all(Array.from({ length: clients }, (_, c) => runClient(c, host, port)));
  const secs = (Date.now() - started) / 1000;
  const sum = (f: (r: ClientResult) => number) => results.reduce((a, r) => a + f(r), 0);
  const lost = results.flatMap((r) => r.lost);
  t.comment(`${sum((r) => r.sent)} datagrams from ${clients} sockets to ${host}:${port} in ${secs.toFixed(2)} s (${Math.round(sum((r) => r.sent) / secs)} echoes/s)`);
  if (lost.length > 0) t.comment(`lost: ${lost.length}, sizes ${lost.map((b) => b.length).join(',')}`);
  t.equal(sum((r) => r.sent), clients * PER_CLIENT, 'every datagram was sent');
  t.equal(sum((r) => r.echoed), clients * PER_CLIENT, 'every datagram came back');
  t.equal(lost.length, 0, 'none lost');
  t.equal(sum((r) => r.crossTalk), 0, 'no reply reached another client socket');
  t.equal(sum((r) => r.corrupt), 0, 'every reply equals a datagram this socket sent (boundaries and bytes intact)');
  t.equal(sum((r) => r.fromWrongAddress), 0, 'every reply came from the public port');
  t.equal(Math.min(...results.map((r) => r.sizes.min)), 1, 'sizes down to 1 byte');
  t.equal(Math.max(...results.map((r) => r.sizes.max)), 1472, 'sizes up to 1472 bytes');
}

t.test('10,000 datagrams of 1-1472 bytes from 50 sockets echo intact to their own sender', async (t) => {
  const port = cluster.server.ports[0]!;
  const target = await startUdpTarget(TARGET_HOST, port);
  t.teardown(() => target.close());
  await echoRound(t, '127.0.0.1', port, CLIENTS);
  t.equal(target.received, TOTAL, `the app received exactly ${TOTAL} datagrams (the diagnosis when a test above fails: lost before the app = relay->agent direction)`);
  t.equal(target.sources.size, CLIENTS, 'the app saw one source socket per client flow');
});

t.test('a 1-byte and a 1472-byte datagram arrive as such; a 0-byte one too', async (t) => {
  const port = cluster.server.ports[1]!;
  const seen: number[] = [];
  const target = await startUdpTarget(TARGET_HOST, port, (m) => {
    seen.push(m.length);
    return Buffer.from(String(m.length));
  });
  t.teardown(() => target.close());
  const sock = await bindUdp('127.0.0.1');
  t.teardown(() => closeUdp(sock));
  for (const size of [1, 1472, 0, 65_507 - 8]) {
    const reply = await request(sock, port, '127.0.0.1', Buffer.alloc(size, 7));
    t.equal(reply.toString(), String(size), `${size}-byte datagram arrived as one ${size}-byte datagram`);
  }
  t.ok(seen.every((n) => [1, 1472, 0, 65_499].includes(n)), 'the app never saw merged or split datagrams');
});

t.test('dual-stack relay (ports.bind "::"): IPv6 and IPv4 clients', async (t) => {
  try {
    const probe = dgram.createSocket('udp6');
    await new Promise<void>((res, rej) => {
      probe.once('error', rej);
      probe.bind(0, '::1', () => res());
    });
    probe.close();
  } catch {
    t.comment('skipped: this host has no IPv6 loopback (::1); IPv4 is covered above');
    t.pass('IPv6 skipped: no ::1 on this host');
    return;
  }
  const v6 = await startCluster({ relay: { bind: '::' }, server: { udp: true } });
  t.teardown(() => v6.stop());
  // A wildcard relay holds its block's ports on every local address, so the app
  // cannot sit on the same port number here: map the public port to another one.
  const port = v6.server.ports[0]!;
  const target = await startUdpTarget(TARGET_HOST, 0);
  t.teardown(() => target.close());
  const res = await v6.relay.api('POST', `/v1/servers/${v6.server.id}/proxy/ports`, { internal_port: target.port, external_port: port, protocol: 'udp', description: 'ipv6 echo' });
  t.equal(res.status, 201, `udp mapping ${port} -> ${target.port}: ${JSON.stringify(res.body).slice(0, 200)}`);
  await t.test('IPv6 clients on ::1', (t) => echoRound(t, '::1', port, 10));
  await t.test('IPv4 clients on the same dual-stack socket', (t) => echoRound(t, '127.0.0.1', port, 10));
});

t.test("a udp mapping's usage statistics: payload bytes each way, a flow counts as a connection", async (t) => {
  const target = await startUdpTarget(TARGET_HOST, 0, (m) => Buffer.concat([m, m])); // answers twice the bytes
  t.teardown(() => target.close());
  const port = cluster.server.ports[2]!;
  const made = await cluster.relay.api('POST', `/v1/servers/${cluster.server.id}/proxy/ports`, { internal_port: target.port, external_port: port, protocol: 'udp', description: 'stats' });
  t.equal(made.status, 201);
  const sock = await bindUdp('127.0.0.1');
  t.teardown(() => closeUdp(sock));
  let sent = 0;
  for (const size of [10, 100, 1000]) {
    const reply = await request(sock, port, '127.0.0.1', Buffer.alloc(size, 3));
    t.equal(reply.length, 2 * size);
    sent += size;
  }
  const view = await cluster.relay.api('GET', `/v1/servers/${cluster.server.id}/proxy`);
  const u = view.body.data.port_mappings.find((m: any) => m.id === made.body.data.id).usage_statistics;
  t.equal(u.bytes_in, sent, 'bytes_in: the datagrams from the client');
  t.equal(u.bytes_out, 2 * sent, 'bytes_out: the datagrams back');
  t.equal(u.total_connections, 1, 'one flow');
  t.equal(u.open_connections, 1, 'still open (idle timeout not reached)');
  t.ok(u.last_accessed, 'last_accessed set');
  // Turning UDP off ends the server's flows: no longer open.
  t.equal((await cluster.relay.api('PUT', `/v1/servers/${cluster.server.id}/udp`, { enabled: false })).status, 200);
  const after = (await cluster.relay.api('GET', `/v1/servers/${cluster.server.id}/proxy`)).body.data.port_mappings.find((m: any) => m.id === made.body.data.id).usage_statistics;
  t.equal(after.open_connections, 0, 'the flow is closed');
  t.equal(after.total_connections, 1);
  t.equal((await cluster.relay.api('PUT', `/v1/servers/${cluster.server.id}/udp`, { enabled: true })).status, 200);
});
