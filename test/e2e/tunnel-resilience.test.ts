// Relay restarts, wrong tokens, cross-server isolation, garbage on the tunnel port, the loop guard.
import t from 'tap';
import net from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import { createServer, eventually, startAgent, startRelay, TARGET_HOST, type RelayHandle } from '../helpers/cluster.js';
import { exchange, refused, startEcho } from '../helpers/targets.js';
import { rss } from '../helpers/proc-mem.js';
import { encodeFrameHeader, Flag, FrameType, Session } from '../../shared/mux/index.js';
import { encodeFrame } from '../../shared/framing/length-prefixed.js';
import { readFrame } from '../../shared/framing/read-frame.js';
import { EnvelopeCodec } from '../../proto/index.js';
import { sealedEngine } from '../../shared/sealed/engine.js';

const MiB = 1024 * 1024;

t.test('relay SIGKILL + restart on the same data dir: the agent reconnects and the same ports carry traffic', async (t) => {
  let relay = await startRelay();
  const server = await createServer(relay);
  const port = server.ports[0]!;
  const echo = await startEcho(TARGET_HOST, port);
  const agent = await startAgent(relay, server.token);
  t.teardown(async () => {
    await agent.stop();
    await relay.stop();
    await echo.close();
    rmSync(relay.dataDir, { recursive: true, force: true });
  });
  const first = await exchange('127.0.0.1', port, MiB);
  t.equal(first.receivedSha, first.sentSha, 'traffic flows before the crash');
  const connectedBefore = agent.out.lines.filter((l) => l.startsWith('connected to')).length;
  t.equal(await relay.stop('SIGKILL'), 'SIGKILL', 'relay killed');
  t.ok(await refused('127.0.0.1', port, 2000), 'the public port is gone while the relay is down');
  relay = await startRelay({ dataDir: relay.dataDir, ports: relay.ports });
  await eventually(() => agent.out.lines.filter((l) => l.startsWith('connected to')).length > connectedBefore, 20_000);
  const again = await exchange('127.0.0.1', port, MiB);
  t.equal(again.receivedSha, again.sentSha, 'the same public port carries traffic after the restart');
  const list = await relay.api('GET', `/v1/servers/${server.id}`);
  t.same(list.body.data.ports, server.ports, 'the server kept its block');
  t.equal(list.body.data.online, true, 'the API shows the agent online again');
});

t.test('tokens and isolation', async (t) => {
  const relay = await startRelay();
  // Each teardown is registered as soon as its part exists: a failed start further down must not
  // leave the relay running (the file would then wait for its 300 s timeout instead of failing).
  t.teardown(async () => {
    await relay.stop();
    rmSync(relay.dataDir, { recursive: true, force: true });
  });
  const a = await createServer(relay, { id: 'server-a' });
  const b = await createServer(relay, { id: 'server-b' });
  const echoA = await startEcho(TARGET_HOST, a.ports[0]!);
  t.teardown(() => echoA.close());
  const echoB = await startEcho(TARGET_HOST, b.ports[0]!);
  t.teardown(() => echoB.close());

  await t.test('a wrong token makes the agent exit 2 with a one-line reason', async (t) => {
    const bad = await startAgent(relay, `ptk_server-a_${'a'.repeat(32)}`, { wait: false });
    t.equal(await bad.exited, 2, 'exit status 2');
    const log = readFileSync(bad.logFile, 'utf8');
    t.match(log, /portico agent: UNAUTHORIZED: agent token rejected/, 'the reason names the code');
    t.notMatch(log, /a{32}/, 'the token is not echoed');
    const garbage = await startAgent(relay, 'not-a-token', { wait: false });
    t.equal(await garbage.exited, 2, 'a malformed token also exits 2');
  });

  await t.test("server B's agent cannot serve server A's ports", async (t) => {
    const agentB = await startAgent(relay, b.token, { yaml: `mappings:\n  - internal_port: 9999\n    external_port: ${a.ports[1]}\n` });
    t.teardown(() => agentB.stop());
    await eventually(() => agentB.out.lines.some((l) => l.startsWith('refused mapping')));
    t.ok(agentB.out.lines.some((l) => /refused mapping: .*PORT_OUT_OF_BLOCK|not in server server-b's block/.test(l)), 'a mapping into A\'s block is refused');
    t.notOk(agentB.out.lines.some((l) => l.includes(`:${a.ports[0]} `)), "B's endpoint table has none of A's ports");
    t.ok(await refused('127.0.0.1', a.ports[0]!), "A's port is closed while only B's agent is online");
    const viaB = await exchange('127.0.0.1', b.ports[0]!, 64 * 1024);
    t.equal(viaB.receivedSha, viaB.sentSha, "B's own port works");
    t.equal(echoA.accepted, 0, "A's target never saw a connection");
  });

  await t.test('1,000 garbage bytes on the tunnel port disconnect only that peer', async (t) => {
    const agentA = await startAgent(relay, a.token);
    t.teardown(() => agentA.stop());
    const [host, port] = relay.tunnelAddr.split(':') as [string, string];
    const plain = await new Promise<string>((resolve) => {
      const s = net.connect({ host, port: Number(port) }, () => s.write(randomBytes(1000)));
      s.on('error', () => undefined);
      s.resume(); // read, so the relay's FIN is seen
      s.on('close', () => resolve('closed'));
      setTimeout(() => resolve('still open'), 10_000).unref();
    });
    t.equal(plain, 'closed', 'raw garbage: the relay closed that connection');
    const inTls = await new Promise<string>((resolve) => {
      const s = tls.connect({ host, port: Number(port), ca: readFileSync(relay.caPath), servername: 'localhost' }, () => s.write(randomBytes(1000)));
      s.on('error', () => undefined);
      s.resume(); // read, so the relay's FIN is seen
      s.on('close', () => resolve('closed'));
      setTimeout(() => resolve('still open'), 10_000).unref();
    });
    t.equal(inTls, 'closed', 'garbage inside TLS (bad yamux frames): closed');
    const ok = await exchange('127.0.0.1', a.ports[0]!, MiB);
    t.equal(ok.receivedSha, ok.sentSha, 'the connected agent was not affected');
    t.equal(agentA.out.lines.filter((l) => l.startsWith('connected to')).length, 1, 'and never had to reconnect');
  });

  await t.test('a peer that floods pings and reads nothing (no token needed) is disconnected; relay memory stays bounded, the connected agent unaffected', async (t) => {
    const agentA = await startAgent(relay, a.token);
    t.teardown(() => agentA.stop());
    const [host, port] = relay.tunnelAddr.split(':') as [string, string];
    const before = rss(relay.child.pid!);
    let peak = before;
    const pings = Buffer.concat(Array.from({ length: 4096 }, (_, i) => encodeFrameHeader({ type: FrameType.Ping, flags: Flag.SYN, streamId: 0, length: i + 1 })));
    let sent = 0;
    const outcome = await new Promise<string>((resolve) => {
      const s = tls.connect({ host, port: Number(port), ca: readFileSync(relay.caPath), servername: 'localhost' });
      s.pause(); // never reads: the relay's pongs can only pile up
      s.on('error', () => undefined);
      s.on('close', () => resolve('closed'));
      const deadline = Date.now() + 20_000;
      const pump = (): void => {
        peak = Math.max(peak, rss(relay.child.pid!));
        // Bounded: 256 MiB of pings or 20 s, whichever first.
        if (s.destroyed || sent >= 256 * MiB || Date.now() > deadline) {
          if (!s.destroyed) resolve('still open');
          return;
        }
        sent += pings.length;
        if (s.write(pings)) setImmediate(pump);
        else s.once('drain', pump);
      };
      s.once('secureConnect', pump);
    });
    t.equal(outcome, 'closed', `the relay closed the flooding connection (after ${(sent / MiB).toFixed(1)} MiB of pings)`);
    t.ok(peak - before < 64 * MiB, `relay RSS grew ${((peak - before) / MiB).toFixed(1)} MiB (< 64 MiB)`);
    const ok = await exchange('127.0.0.1', a.ports[0]!, MiB);
    t.equal(ok.receivedSha, ok.sentSha, 'the connected agent was not affected');
    t.equal(agentA.out.lines.filter((l) => l.startsWith('connected to')).length, 1, 'and never had to reconnect');
  });

  await t.test('tunnel.max_pending_per_ip: one address holds at most 64 connections in the TLS handshake; others connect; a closed one frees its slot', async (t) => {
    const [host, port] = relay.tunnelAddr.split(':') as [string, string];
    // Each sends the first byte of a TLS record and stalls: a handshake begun and never finished
    // (the relay accepts a connection only once it has spoken: TCP_DEFER_ACCEPT).
    const open = (localAddress: string, speak = true) =>
      new Promise<{ sock: net.Socket; closedWithin: (ms: number) => Promise<boolean> }>((resolve) => {
        const sock = net.connect({ host, port: Number(port), localAddress }, () => {
          if (speak) sock.write(Buffer.from([0x16]));
          resolve({ sock, closedWithin });
        });
        sock.on('error', () => undefined);
        sock.resume();
        const closed = new Promise<void>((r) => sock.once('close', () => r()));
        const closedWithin = (ms: number) => Promise.race([closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
      });
    const held: net.Socket[] = [];
    t.teardown(() => held.forEach((s) => s.destroy()));
    if (sealedEngine()) {
      // Silent TCP connections wait in the kernel, not in the relay: they take no slot.
      for (let i = 0; i < 70; i++) held.push((await open('127.0.0.9', false)).sock);
    }
    const conns = [];
    for (let i = 0; i < 70; i++) {
      const c = await open('127.0.0.9');
      held.push(c.sock);
      conns.push(c);
    }
    const closed = await Promise.all(conns.map((c) => c.closedWithin(1_500)));
    t.equal(closed.filter((x) => !x).length, 64, '64 stalled handshakes from 127.0.0.9 wait (after 70 silent connections from it, when the engine is built)');
    t.same(closed.slice(64), [true, true, true, true, true, true], 'the 65th and later are closed at once');
    const agentA = await startAgent(relay, a.token);
    t.teardown(() => agentA.stop());
    const ok = await exchange('127.0.0.1', a.ports[0]!, MiB);
    t.equal(ok.receivedSha, ok.sentSha, 'an agent from another address connects and carries traffic meanwhile');
    conns[0]!.sock.destroy();
    // The slot frees once the relay has seen the close: retry for up to 3 s.
    let again = await open('127.0.0.9');
    for (const until = Date.now() + 3_000; (await again.closedWithin(300)) && Date.now() < until; ) again = await open('127.0.0.9');
    held.push(again.sock);
    t.equal(await again.closedWithin(500), false, 'a slot freed by a close is usable again');
    t.match(readFileSync(relay.logFile, 'utf8'), /tunnel\.max_pending_per_ip reached/, 'the relay warned');
  });

  await t.test("an agent's self-description (version, hostname) is clipped to 128 characters in the API and the log", async (t) => {
    const [host, port] = relay.tunnelAddr.split(':') as [string, string];
    const sock = tls.connect({ host, port: Number(port), ca: readFileSync(relay.caPath), servername: 'localhost' });
    await once(sock, 'secureConnect');
    const mux = new Session(sock, { isClient: true });
    t.teardown(() => mux.destroy());
    const control = mux.open();
    const big = 'v'.repeat(100_000);
    control.write(encodeFrame(EnvelopeCodec.encode({ id: 1, replyTo: 0, hello: { maxVersion: 1, minVersion: 1, token: b.token, agentVersion: big, hostname: `h${big}`, localHost: '127.0.0.2', mappings: [] } })));
    const welcome = EnvelopeCodec.decode(await readFrame(control, 10_000));
    t.ok('welcome' in welcome, 'the agent is welcomed');
    const view = await relay.api('GET', `/v1/servers/${b.id}`);
    t.equal(view.body.data.agent_version, 'v'.repeat(128), 'agent_version: the first 128 characters');
    const mine = () => readFileSync(relay.logFile, 'utf8').split('\n').find((l) => l.includes('agent online') && l.includes(`"agentVersion":"${'v'.repeat(128)}"`));
    await eventually(() => mine() !== undefined, 5_000);
    const line = mine()!;
    t.ok(line.length < 2_000 && !line.includes('v'.repeat(129)), `its "agent online" log line stays short (${line.length} characters)`);
  });
});

t.test('loop guard: identity forwarding back into the relay is refused, not multiplied', async (t) => {
  const relay: RelayHandle = await startRelay();
  const server = await createServer(relay);
  // local_host = the relay's own bind address: public P -> 127.0.0.1:P = the relay itself.
  const agent = await startAgent(relay, server.token, { localHost: '127.0.0.1' });
  t.teardown(async () => {
    await agent.stop();
    await relay.stop();
    rmSync(relay.dataDir, { recursive: true, force: true });
  });
  const port = server.ports[5]!;
  t.ok(await refused('127.0.0.1', port, 5000), 'the client sees the connection closed');
  const loops = () => readFileSync(relay.logFile, 'utf8').split('\n').filter((l) => l.includes('LOOP_DETECTED')).length;
  // The log reaches its file through a pipe: wait for the first refusal, then give a snowball time to show.
  await eventually(() => loops() >= 1, 5_000);
  await new Promise((r) => setTimeout(r, 500));
  t.equal(loops(), 1, 'exactly one loop refused for one client connection (no snowball)');
  const status = await relay.api('GET', `/v1/servers/${server.id}`);
  t.equal(status.body.data.online, true, 'the agent stays online');
});
