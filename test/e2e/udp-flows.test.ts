// UDP lifecycle: off by default (nothing bound), switched on and off live via
// the API without restarting the agent, flows expiring after
// udp.flow_idle_timeout, and the per-server flow cap.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { eventually, startCluster, TARGET_HOST, type Cluster } from '../helpers/cluster.js';
import { bindUdp, closeUdp, noReply, request, startUdpTarget, udpPortFree } from '../helpers/udp.js';

const IDLE_MS = 1_000;
const MAX_FLOWS = 3;
let cluster: Cluster;

t.before(async () => {
  cluster = await startCluster({
    relay: { logLevel: 'debug', extraYaml: `udp: { flow_idle_timeout: ${IDLE_MS}ms, max_flows_per_server: ${MAX_FLOWS} }` },
    server: { udp: false },
  });
});
t.teardown(async () => {
  await cluster?.stop();
});

const relayLog = () => readFileSync(cluster.relay.logFile, 'utf8');
/** UDP ports in LISTEN-equivalent state per `ss -uln` (null when ss is missing). */
function ssUdpPorts(): Set<number> | null {
  try {
    const out = execFileSync('ss', ['-Huln'], { encoding: 'utf8' });
    return new Set(out.split('\n').map((l) => Number(/:(\d+)\s/.exec(l.split(/\s+/)[3] + ' ')?.[1])).filter((n) => n > 0));
  } catch {
    return null;
  }
}

async function boundCount(ports: number[]): Promise<number> {
  let n = 0;
  for (const p of ports) if (!(await udpPortFree('127.0.0.1', p))) n++;
  return n;
}

t.test('UDP disabled: no public UDP socket for the server (real bind attempts and ss -uln)', async (t) => {
  const { ports } = cluster.server;
  t.equal(await boundCount(ports), 0, `all ${ports.length} block ports are free for UDP on 127.0.0.1`);
  const ss = ssUdpPorts();
  if (ss) t.equal(ports.filter((p) => ss.has(p)).length, 0, 'ss -uln lists none of them');
  else t.comment('ss not installed: bind attempts only');
  const show = await cluster.relay.api('GET', `/v1/servers/${cluster.server.id}`);
  t.equal(show.body.data.udp, false);
});

t.test('PUT /udp {enabled:true}: bound on every block port without an agent restart, and forwarding', async (t) => {
  const { ports, id } = cluster.server;
  const pid = cluster.agent.child.pid;
  const res = await cluster.relay.api('PUT', `/v1/servers/${id}/udp`, { enabled: true });
  t.equal(res.status, 200);
  await eventually(async () => (await boundCount(ports)) === ports.length, 5_000);
  t.pass(`the relay holds UDP on all ${ports.length} block ports`);
  const ss = ssUdpPorts();
  if (ss) t.equal(ports.filter((p) => ss.has(p)).length, ports.length, 'ss -uln lists all of them');
  const target = await startUdpTarget(TARGET_HOST, ports[0]!);
  t.teardown(() => target.close());
  const sock = await bindUdp('127.0.0.1');
  t.teardown(() => closeUdp(sock));
  const reply = await request(sock, ports[0]!, '127.0.0.1', Buffer.from('ping'));
  t.equal(reply.toString(), 'ping', 'a datagram makes the round trip');
  t.equal(cluster.agent.child.pid, pid, 'same agent process');
  t.equal(cluster.agent.child.exitCode, null, 'agent still running');
  await cluster.agent.out.waitFor(/^mappings updated:/, 2_000);
  t.pass('the agent got the udp mappings live');
});

t.test(`flows expire after udp.flow_idle_timeout (${IDLE_MS} ms); busy flows do not`, async (t) => {
  const port = cluster.server.ports[1]!;
  const sources: string[] = [];
  const target = await startUdpTarget(TARGET_HOST, port, (m) => Buffer.from(m));
  target.socket.on('message', (_m, r) => sources.push(`${r.address}:${r.port}`));
  t.teardown(() => target.close());
  const idle = await bindUdp('127.0.0.1');
  const busy = await bindUdp('127.0.0.1');
  t.teardown(() => Promise.all([closeUdp(idle), closeUdp(busy)]));
  await request(idle, port, '127.0.0.1', Buffer.from('idle-1'));
  await request(busy, port, '127.0.0.1', Buffer.from('busy-1'));
  const idleSrc1 = sources[sources.length - 2]!;
  const busySrc1 = sources[sources.length - 1]!;
  t.not(idleSrc1, busySrc1, 'two client sockets, two agent sockets');
  // Keep one flow busy (a datagram every IDLE/4) while the other stays silent for 2.5x the timeout.
  const deadline = Date.now() + 2.5 * IDLE_MS;
  while (Date.now() < deadline) {
    await request(busy, port, '127.0.0.1', Buffer.from('busy'));
    await new Promise((r) => setTimeout(r, IDLE_MS / 4));
  }
  await request(idle, port, '127.0.0.1', Buffer.from('idle-2'));
  const idleSrc2 = sources[sources.length - 1]!;
  t.not(idleSrc2, idleSrc1, 'the idle flow expired: its next datagram opened a new flow (new agent socket)');
  t.equal(sources.filter((s) => s !== busySrc1 && s !== idleSrc1 && s !== idleSrc2).length, 0, 'the busy flow kept one agent socket throughout');
  await eventually(() => /"reason":"idle"[^\n]*"msg":"udp flow closed"/.test(relayLog()), 3_000);
  t.pass('the relay logged the idle expiry');
});

t.test(`flow cap: the ${MAX_FLOWS + 1}th concurrent flow is dropped with a clear log line, admitted once others expire`, async (t) => {
  // Let the previous test's flows expire first.
  await new Promise((r) => setTimeout(r, 2.5 * IDLE_MS));
  const port = cluster.server.ports[2]!;
  const target = await startUdpTarget(TARGET_HOST, port);
  t.teardown(() => target.close());
  const socks = await Promise.all(Array.from({ length: MAX_FLOWS + 1 }, () => bindUdp('127.0.0.1')));
  t.teardown(() => Promise.all(socks.map(closeUdp)));
  for (let i = 0; i < MAX_FLOWS; i++) t.equal((await request(socks[i]!, port, '127.0.0.1', Buffer.from(`f${i}`))).toString(), `f${i}`, `flow ${i + 1} admitted`);
  const extra = socks[MAX_FLOWS]!;
  t.ok(await noReply(extra, port, '127.0.0.1', Buffer.from('over'), IDLE_MS / 2), `flow ${MAX_FLOWS + 1} gets nothing while ${MAX_FLOWS} are live`);
  const line = await eventually(() => relayLog().split('\n').find((l) => l.includes('udp flow cap')), 2_000);
  t.match(line!, new RegExp(`server ${cluster.server.id} already has ${MAX_FLOWS} flows \\(udp.max_flows_per_server\\)`), 'the log names the server, the cap and the key');
  t.match(line!, /new flow 127\.0\.0\.1:\d+ to public port \d+ was dropped/);
  t.comment(JSON.parse(line!).msg);
  const view = await cluster.relay.api('GET', `/v1/servers/${cluster.server.id}`);
  const udp = view.body.data.udp_stats;
  t.equal(udp.flows, MAX_FLOWS, 'the API shows the live flow count');
  t.ok(udp.refused_by_cap >= 1 && udp.datagrams_in >= MAX_FLOWS && udp.expired_flows >= 1, 'and the cap refusals, datagrams and expiries');
  // Stop the first flows; once they expire the new one gets in.
  const reply = await request(extra, port, '127.0.0.1', Buffer.from('later'), 4 * IDLE_MS, IDLE_MS / 2);
  t.equal(reply.toString(), 'later', 'admitted after the others expired');
});

t.test('PUT /udp {enabled:false}: every UDP socket of the server is closed, live', async (t) => {
  const { ports, id } = cluster.server;
  const res = await cluster.relay.api('PUT', `/v1/servers/${id}/udp`, { enabled: false });
  t.equal(res.status, 200);
  await eventually(async () => (await boundCount(ports)) === 0, 5_000);
  t.pass('nothing bound any more');
  t.equal(cluster.agent.child.exitCode, null, 'agent still running');
});
