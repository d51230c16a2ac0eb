// Slow and greedy clients against the HTTPS web proxy with the default
// hardening: slowloris connections (a header byte every 2 s), clients that
// never finish the TLS handshake and clients that connect and say nothing are
// all closed after header_timeout (8 s, swept every second) while normal
// requests keep succeeding; a per-IP
// connection cap refuses extra connections from one address only.
import t from 'tap';
import net from 'node:net';
import tls from 'node:tls';
import https from 'node:https';
import { rmSync } from 'node:fs';
import { createServer, startAgent } from '../helpers/cluster.js';
import { caOf, httpsHostsOf, startOrigin, startWebRelay, webRequest } from '../helpers/web.js';

const relay = await startWebRelay();
const capped = await startWebRelay({ https: 'max_connections_per_ip: 10' });
const origin = await startOrigin();
const server = await createServer(relay, { id: 'gpu-l' });
const agent = await startAgent(relay, server.token, { yaml: `mappings:\n  - { internal_port: ${origin.port}, http: true }` });
const { secure: host } = await httpsHostsOf(agent, origin.port);
const sockets = new Set<net.Socket>();

t.teardown(async () => {
  for (const s of sockets) s.destroy();
  await agent.stop();
  await Promise.all([relay.stop(), capped.stop()]);
  await origin.close();
  rmSync(relay.dataDir, { recursive: true, force: true });
  rmSync(capped.dataDir, { recursive: true, force: true });
});

/** Resolves with how long after `start` the socket was closed by the relay (or Infinity at the deadline). */
function closedAfter(sock: net.Socket, start: number, deadlineMs: number): Promise<number> {
  sockets.add(sock);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(Infinity), deadlineMs);
    sock.on('error', () => undefined);
    sock.resume(); // read what the relay says (408), or 'end' never shows
    sock.once('close', () => {
      clearTimeout(timer);
      sockets.delete(sock);
      resolve(Date.now() - start);
    });
  });
}

t.test('slowloris, stalled handshakes and silent connections are closed after header_timeout; normal requests go on', async (t) => {
  const start = Date.now();
  const drips: NodeJS.Timeout[] = [];
  t.teardown(() => drips.forEach(clearInterval));
  const waits: Promise<number>[] = [];
  // 100 slowloris clients: TLS up, a request line, then one header byte every 2 s.
  for (let i = 0; i < 100; i++) {
    const s = tls.connect({ host: '127.0.0.1', port: relay.ports.https, servername: host, ca: caOf(relay) }, () => {
      s.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nX-Slow: `);
      drips.push(setInterval(() => s.writable && s.write('a'), 2000));
    });
    waits.push(closedAfter(s, Date.now(), 15_000));
  }
  // 20 clients that open TCP and never start TLS; 20 that finish TLS and send nothing.
  for (let i = 0; i < 20; i++) waits.push(closedAfter(net.connect(relay.ports.https, '127.0.0.1'), Date.now(), 15_000));
  for (let i = 0; i < 20; i++) waits.push(closedAfter(tls.connect({ host: '127.0.0.1', port: relay.ports.https, servername: host, ca: caOf(relay) }), Date.now(), 15_000));

  // Meanwhile, real requests every 250 ms.
  let ok = 0;
  let bad = 0;
  const agentHttps = new https.Agent({ keepAlive: true, ca: caOf(relay) });
  t.teardown(() => agentHttps.destroy());
  const normal = (async () => {
    while (Date.now() - start < 10_000) {
      const r = await webRequest(relay, host, { path: '/ok', agent: agentHttps }).catch(() => null);
      if (r?.status === 200) ok++;
      else bad++;
      await new Promise((res) => setTimeout(res, 250));
    }
  })();
  const times = await Promise.all(waits);
  await normal;
  const worst = Math.max(...times);
  // Each from its own start: header_timeout (8 s) plus Node's 1 s sweep is 9 s; 2 s more for a loaded machine.
  t.ok(worst <= 11_000, `all 140 slow connections closed; the last ${worst} ms after it was opened`);
  t.ok(times.slice(0, 100).every((x) => x > 2_000), 'slowloris connections were not cut before they were slow');
  t.equal(bad, 0, 'no normal request failed');
  t.ok(ok >= 10, `${ok} normal requests succeeded meanwhile`);
});

t.test('per-IP connection cap: the 11th connection from one address is refused, others are not', async (t) => {
  const port = capped.ports.https;
  const openConn = (localAddress: string) =>
    new Promise<tls.TLSSocket | Error>((resolve) => {
      const s = tls.connect({ socket: net.connect({ host: '127.0.0.1', port, localAddress }), servername: 'localhost', ca: caOf(capped) }, () => resolve(s));
      sockets.add(s);
      s.once('error', (e) => resolve(e));
      s.once('close', () => sockets.delete(s));
    });
  const first: Array<tls.TLSSocket | Error> = [];
  for (let i = 0; i < 10; i++) first.push(await openConn('127.0.0.1'));
  t.equal(first.filter((s) => !(s instanceof Error)).length, 10, '10 connections from 127.0.0.1 accepted');
  t.ok((await openConn('127.0.0.1')) instanceof Error, 'the 11th is refused');
  const other = await openConn('127.0.0.5');
  t.notOk(other instanceof Error, 'another address still gets in');
  if (!(other instanceof Error)) other.destroy();
  (first[0] as tls.TLSSocket).destroy();
  // The slot frees once the relay has seen the close: retry for up to 3 s.
  let again = await openConn('127.0.0.1');
  for (const until = Date.now() + 3_000; again instanceof Error && Date.now() < until; ) {
    await new Promise((r) => setTimeout(r, 100));
    again = await openConn('127.0.0.1');
  }
  t.notOk(again instanceof Error, 'a slot freed by a close is usable again');
  for (const s of [...first, again]) if (!(s instanceof Error)) s.destroy();
});
