// Datagram pairs of the sealed engine (native/sealed_pump.c, addUdp and
// udpSocket) on real loopback sockets: datagrams cross two pairs joined by
// a data connection with their boundaries and bytes intact (sha256 of
// every one); what the engine seals opens with the JavaScript reference as
// length-prefixed datagrams; a connected socket on a shared SO_REUSEPORT
// port gets its own client's datagrams and no one else's; ICMP errors
// (nothing listening yet) do not end a pair; a malformed unit (a record
// overrunning it, an empty unit, a FIN) resets only that pair; bytes read
// before the hand-over come first; runs of equal datagrams (sent as one
// segmented message where the kernel can) come out one by one; a burst is sealed many datagrams to a
// unit; large datagrams (65,507 bytes the largest) spread over units in
// order; nothing stays live.
import t, { type Test } from 'tap';
import dgram from 'node:dgram';
import os from 'node:os';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { sealedEngine, sealedProblem, type SealedUdpPair } from '../../shared/sealed/engine.js';
import { keyPairs, openUnits, sealUnit, unreadPair } from '../helpers/sealed-units.js';

const engine = sealedEngine();
if (!engine) {
  t.test('sealed engine, datagram pairs', { skip: `unavailable: ${sealedProblem()}` }, async () => undefined);
} else {
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  /** Linux 4.18 and later know UDP_SEGMENT. */
  const offloadKernel = (([major = 0, minor = 0]) => major > 4 || (major === 4 && minor >= 18))(os.release().split('.').map(Number));

  /** A bound node:dgram socket on 127.0.0.1, closed at teardown. */
  async function udp(t: Test, port = 0): Promise<dgram.Socket> {
    const s = dgram.createSocket('udp4');
    s.bind(port, '127.0.0.1');
    await once(s, 'listening');
    s.setRecvBufferSize(4 << 20); // the engine is under test, not how fast this process reads
    t.teardown(() => new Promise<void>((res) => s.close(() => res())));
    return s;
  }

  /** Collects datagrams on `s` until `n` arrived or `ms` passed. */
  function collect(s: dgram.Socket, n: number, ms = 5_000): Promise<Buffer[]> {
    return new Promise((resolve) => {
      const got: Buffer[] = [];
      const done = () => {
        clearTimeout(timer);
        s.off('message', on);
        resolve(got);
      };
      const on = (m: Buffer) => {
        got.push(m);
        if (got.length >= n) done();
      };
      const timer = setTimeout(done, ms);
      s.on('message', on);
    });
  }

  /** Frames datagrams as a unit's plaintext: [len:u16be][payload]... */
  const frame = (ds: Buffer[]) => Buffer.concat(ds.flatMap((d) => [Buffer.from([d.length >> 8, d.length & 0xff]), d]));

  /** Splits a unit's plaintext back into datagrams. */
  function unframe(b: Buffer): Buffer[] {
    const out: Buffer[] = [];
    for (let off = 0; off < b.length; ) {
      const n = b.readUInt16BE(off);
      out.push(b.subarray(off + 2, off + 2 + n));
      off += 2 + n;
    }
    return out;
  }

  const ended = (p: SealedUdpPair, ...socks: { destroy(): void }[]) => p.done.then((r) => (socks.forEach((s) => s.destroy()), r));

  /** A port free on 127.0.0.1 right now (bound and closed again). */
  async function freePort(): Promise<number> {
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1');
    await once(s, 'listening');
    const { port } = s.address();
    await new Promise<void>((res) => s.close(() => res()));
    return port;
  }

  /** Sends datagrams in bursts of 20, 2 ms apart, so no kernel buffer on the way overflows. */
  async function paced(from: dgram.Socket, ds: Buffer[], port: number): Promise<void> {
    for (let i = 0; i < ds.length; i += 20) {
      for (const d of ds.slice(i, i + 20)) from.send(d, port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  t.test('two datagram pairs over one data connection: 2,000 datagrams each way, boundaries and bytes intact', async (t) => {
    const keys = keyPairs();
    const client = await udp(t);
    const app = await udp(t);
    // The relay's side: a socket on a port of its own, connected to the client (as a sealed flow's is); the agent's, connected to the app.
    const pubPort = await freePort();
    const relayFd = engine.udpSocket({ v6: false, bindHost: '127.0.0.1', bindPort: pubPort, connect: { host: '127.0.0.1', port: client.address().port }, bufferBytes: 1 << 20 });
    const agentFd = engine.udpSocket({ v6: false, bindHost: '127.0.0.1', bindPort: 0, connect: { host: '127.0.0.1', port: app.address().port }, bufferBytes: 1 << 20 });
    const [agentData, relayData] = await unreadPair(t);
    const relay = engine.addUdp(relayFd, relayData, keys.a);
    const agent = engine.addUdp(agentFd, agentData, keys.b);
    engine.closeFd(relayFd);
    engine.closeFd(agentFd);
    const relayDone = ended(relay, relayData);
    const agentDone = ended(agent, agentData);
    const N = 2_000;
    const up = Array.from({ length: N }, (_, i) => randomBytes(i % 7 === 0 ? 0 : 1 + ((i * 7919) % 1472)));
    const down = Array.from({ length: N }, (_, i) => randomBytes(1 + ((i * 104729) % 1400)));
    const agentPort = new Promise<number>((res) => app.once('message', (_m, r) => res(r.port)));
    const appGot = collect(app, N);
    await paced(client, up, pubPort);
    const a = await appGot;
    t.equal(a.length, N, 'the app got every datagram');
    t.same(a.map(sha).sort(), up.map(sha).sort(), 'each one intact (sha256), empty ones too');
    const clientGot = collect(client, N);
    const from = new Promise<number>((res) => client.once('message', (_m, r) => res(r.port)));
    await paced(app, down, await agentPort);
    const c = await clientGot;
    t.equal(c.length, N, 'the client got every reply');
    t.same(c.map(sha).sort(), down.map(sha).sort(), 'each one intact (sha256)');
    t.equal(await from, pubPort, 'replies come from the relay side\'s port');
    t.equal(relay.datagramsUp, N, 'relay counted datagrams up');
    t.equal(agent.datagramsDown, N, 'agent counted datagrams down');
    t.equal(relay.up, up.reduce((n, d) => n + d.length, 0), 'relay counted payload bytes (no length prefixes)');
    t.equal(agent.datagramsUp, N, 'agent counted replies up');
    t.equal(relay.datagramsDown, N, 'relay counted replies down');
    t.equal(relay.drops + agent.drops, 0, 'nothing dropped');
    relay.abort();
    agent.abort();
    const [r1, r2] = await Promise.all([relayDone, agentDone]);
    t.equal(r1.code, 'ABORTED', 'a datagram pair ends by abort');
    t.equal(r2.code, 'ABORTED');
    t.equal(engine.live, 0, 'no pair left');
  });

  t.test('a connected socket on a shared SO_REUSEPORT port takes its client\'s datagrams only', async (t) => {
    const pubFd = engine.udpSocket({ v6: false, bindHost: '127.0.0.1', bindPort: 0, bufferBytes: 0 });
    const pub = dgram.createSocket('udp4');
    await new Promise<void>((res) => pub.bind({ fd: pubFd }, res)); // ('listening' is emitted within bind() for a descriptor)
    t.teardown(() => new Promise<void>((res) => pub.close(() => res())));
    const port = pub.address().port;
    const a = await udp(t);
    const b = await udp(t);
    const keys = keyPairs();
    const [peer, sealed] = await unreadPair(t);
    const fd = engine.udpSocket({ v6: false, bindHost: '127.0.0.1', bindPort: port, connect: { host: '127.0.0.1', port: a.address().port }, bufferBytes: 0 });
    const pair = engine.addUdp(fd, sealed, keys.a);
    engine.closeFd(fd);
    const done = ended(pair, sealed);
    const raw: Buffer[] = [];
    peer.on('data', (c: Buffer) => raw.push(c));
    peer.resume();
    const pubGot = collect(pub, 20, 1_000);
    for (let i = 0; i < 20; i++) {
      a.send(Buffer.from(`a${i}`), port, '127.0.0.1');
      b.send(Buffer.from(`b${i}`), port, '127.0.0.1');
    }
    const p = await pubGot;
    t.same(p.map(String).sort(), Array.from({ length: 20 }, (_, i) => `b${i}`).sort(), 'the public socket got the other client\'s datagrams');
    const deadline = Date.now() + 2_000;
    while (unframe(openUnits(keys.b.down, Buffer.concat(raw)).payload).length < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const sealedOnes = unframe(openUnits(keys.b.down, Buffer.concat(raw)).payload).map(String);
    t.same(sealedOnes.sort(), Array.from({ length: 20 }, (_, i) => `a${i}`).sort(), 'the connected socket sealed its client\'s, as length-prefixed datagrams');
    t.throws(() => engine.udpSocket({ v6: false, bindHost: '127.0.0.1', bindPort: a.address().port, bufferBytes: 0 }), { code: 'EADDRINUSE' }, 'a port held without SO_REUSEPORT is refused with its errno');
    t.throws(() => engine.udpSocket({ v6: false, bindHost: 'not-an-ip', bindPort: 0, bufferBytes: 0 }), { code: 'EINVAL' }, 'an address that is not an IP is refused');
    pair.abort();
    t.equal((await done).code, 'ABORTED');
  });

  t.test('udpDrain returns what an unconnected member of the group got, with each sender\'s address', async (t) => {
    const pubFd = engine.udpSocket({ v6: false, bindHost: '127.0.0.1', bindPort: 0, bufferBytes: 0 });
    const pub = dgram.createSocket('udp4');
    await new Promise<void>((res) => pub.bind({ fd: pubFd }, res));
    t.teardown(() => new Promise<void>((res) => pub.close(() => res())));
    const port = pub.address().port;
    // A second member, not connected (as a flow's socket is between its bind and its connect): the kernel spreads clients over both.
    const member = engine.udpSocket({ v6: false, bindHost: '127.0.0.1', bindPort: port, bufferBytes: 0 });
    const senders = await Promise.all(Array.from({ length: 40 }, () => udp(t)));
    const pubGot = collect(pub, 40, 500);
    senders.forEach((s, i) => s.send(Buffer.from(`s${i}`), port, '127.0.0.1'));
    const viaPub = await pubGot;
    const drained = engine.udpDrain(member);
    engine.closeFd(member);
    t.equal(viaPub.length + drained.length, 40, `every datagram is in one of the two (${drained.length} in the second member)`);
    t.ok(drained.length > 0, 'the kernel gave the unconnected member some');
    const bad = drained.filter((d) => {
      const i = Number(String(d.data).slice(1));
      return d.address !== '127.0.0.1' || d.port !== senders[i]!.address().port;
    });
    t.equal(bad.length, 0, 'each drained datagram carries its sender\'s address and port');
    const fresh = engine.udpSocket({ v6: false, bindHost: '127.0.0.1', bindPort: 0, bufferBytes: 0 });
    t.same(engine.udpDrain(fresh), [], 'nothing queued: empty');
    engine.closeFd(fresh);
  });

  t.test('wildcard binds steer the same: 0.0.0.0, and :: with IPv4-mapped and IPv6 clients', async (t) => {
    const cases: [boolean, string, string, 'udp4' | 'udp6'][] = [
      [false, '0.0.0.0', '127.0.0.1', 'udp4'],
      [true, '::', '::ffff:127.0.0.1', 'udp4'],
      [true, '::', '::1', 'udp6'],
    ];
    for (const [v6, host, client, type] of cases) {
      const local = type === 'udp6' ? '::1' : '127.0.0.1';
      const pfd = engine.udpSocket({ v6, bindHost: host, bindPort: 0, bufferBytes: 0 });
      const pub = dgram.createSocket(v6 ? 'udp6' : 'udp4');
      await new Promise<void>((res) => pub.bind({ fd: pfd }, res));
      const port = pub.address().port;
      const socks: dgram.Socket[] = [];
      for (let i = 0; i < 2; i++) {
        const s = dgram.createSocket(type);
        await new Promise<void>((res) => s.bind(0, local, res));
        socks.push(s);
      }
      const [a, b] = socks as [dgram.Socket, dgram.Socket];
      const fd = engine.udpSocket({ v6, bindHost: host, bindPort: port, connect: { host: client, port: a.address().port }, bufferBytes: 0 });
      const pubGot = collect(pub, 10, 1_000);
      for (let i = 0; i < 10; i++) {
        a.send(`a${i}`, port, local);
        b.send(`b${i}`, port, local);
      }
      const p = (await pubGot).map(String);
      await new Promise((r) => setTimeout(r, 50));
      const mine = engine.udpDrain(fd);
      t.ok(p.length === 10 && p.every((x) => x.startsWith('b')), `${host} / ${client}: the public socket got the other client's datagrams only`);
      t.ok(mine.length === 10 && mine.every((x) => String(x.data).startsWith('a') && x.address === client && x.port === a.address().port), `${host} / ${client}: the connected socket got its client's, with its address`);
      engine.closeFd(fd);
      await Promise.all([pub, a, b].map((s) => new Promise<void>((res) => s.close(() => res()))));
    }
  });

  /** A datagram pair whose UDP side is connected to `app` and whose data connection's far end the test plays. */
  async function udpPairWithPeer(t: Test, appPort: number, preload: Buffer | null = null) {
    const keys = keyPairs();
    const fd = engine!.udpSocket({ v6: false, bindHost: '127.0.0.1', bindPort: 0, connect: { host: '127.0.0.1', port: appPort }, bufferBytes: 0 });
    const [peer, sealed] = await unreadPair(t);
    const pair = engine!.addUdp(fd, sealed, keys.a, preload);
    engine!.closeFd(fd);
    peer.resume();
    return { keys, peer, pair, done: ended(pair, sealed) };
  }

  t.test('nothing listening (ICMP port unreachable, refused sends) does not end the pair; an app that comes later gets datagrams', async (t) => {
    const port = await freePort();
    const { keys, peer, pair, done } = await udpPairWithPeer(t, port);
    // Units toward a port nobody listens on: ICMP comes back, the socket reports ECONNREFUSED to a read or a send.
    for (let i = 0; i < 3; i++) {
      peer.write(sealUnit(keys.b.up, i, frame([Buffer.from(`x${i}`), Buffer.from(`y${i}`)])));
      await new Promise((r) => setTimeout(r, 30));
    }
    const deadline = Date.now() + 2_000;
    while (pair.datagramsDown + pair.drops < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    t.equal(pair.datagramsDown + pair.drops, 6, `every datagram was sent or counted as dropped (${pair.drops} dropped)`);
    t.notOk(pair.ended, 'the pair is still running');
    const app = await udp(t, port);
    const got = collect(app, 1);
    peer.write(sealUnit(keys.b.up, 3, frame([Buffer.from('now')])));
    t.same((await got).map(String), ['now'], 'the app that came later gets the next datagram');
    pair.abort();
    t.equal((await done).code, 'ABORTED');
  });

  t.test('malformed units reset only their pair: a record overrunning the unit, an empty unit, a FIN unit', async (t) => {
    const app = await udp(t);
    const cases: [string, (k: ReturnType<typeof keyPairs>) => Buffer][] = [
      ['overrun', (k) => sealUnit(k.b.up, 0, Buffer.concat([Buffer.from([0x05, 0xdc]), Buffer.from('short')]))],
      ['empty', (k) => sealUnit(k.b.up, 0, Buffer.alloc(0))],
      ['fin', (k) => sealUnit(k.b.up, 0, Buffer.alloc(0), true)],
    ];
    const bystander = await udpPairWithPeer(t, app.address().port);
    for (const [name, unit] of cases) {
      const { keys, peer, done } = await udpPairWithPeer(t, app.address().port);
      peer.write(unit(keys));
      t.equal((await done).code, 'PROTOCOL_ERROR', `${name}: PROTOCOL_ERROR`);
    }
    // The bystander still carries datagrams.
    const got = collect(app, 1);
    bystander.peer.write(sealUnit(bystander.keys.b.up, 0, frame([Buffer.from('still here')])));
    t.same((await got).map(String), ['still here'], 'another pair is unaffected');
    bystander.pair.abort();
    await bystander.done;
    t.equal(engine.live, 0, 'no pair left');
  });

  t.test('bytes read off the data connection before the hand-over are opened first', async (t) => {
    const app = await udp(t);
    const keys = keyPairs();
    const u0 = sealUnit(keys.b.up, 0, frame([Buffer.from('one'), Buffer.from('two')]));
    const u1 = sealUnit(keys.b.up, 1, frame([Buffer.from('three')]));
    const fd = engine.udpSocket({ v6: false, bindHost: '127.0.0.1', bindPort: 0, connect: { host: '127.0.0.1', port: app.address().port }, bufferBytes: 0 });
    const [peer, sealed] = await unreadPair(t);
    const got = collect(app, 3);
    const pair = engine.addUdp(fd, sealed, keys.a, Buffer.concat([u0, u1.subarray(0, 7)]));
    engine.closeFd(fd);
    const done = ended(pair, sealed);
    peer.write(u1.subarray(7));
    t.same((await got).map(String), ['one', 'two', 'three'], 'in order, the preload first');
    pair.abort();
    await done;
  });

  t.test('runs of equal datagrams in a unit reach the app one by one, in order, boundaries intact', async (t) => {
    // Where the kernel offers UDP segmentation, a run of one size goes down as one message it cuts
    // again: runs longer than a message holds, a shorter datagram ending a run, a longer one
    // starting the next, empty datagrams, and the largest segments must all come out as sent.
    const app = await udp(t);
    const { keys, peer, pair, done } = await udpPairWithPeer(t, app.address().port);
    const run = (n: number, size: number) => Array.from({ length: n }, () => randomBytes(size));
    const units = [
      [...run(50, 1460), ...run(1, 100), ...run(1, 0), ...run(70, 64), ...run(1, 65), ...run(3, 1000), ...run(1, 1001), ...run(20, 1472)],
      [...run(4, 20_000), ...run(2, 0), ...run(130, 1), ...run(1, 65_507), ...run(5, 9000)],
    ];
    const all = units.flat();
    const before = engine.udpOffload();
    const got = collect(app, all.length);
    units.forEach((u, i) => peer.write(sealUnit(keys.b.up, i, frame(u))));
    const a = await got;
    t.equal(a.length, all.length, `the app got all ${all.length} datagrams`);
    t.same(a.map((d) => d.length), all.map((d) => d.length), 'each with its own length');
    t.same(a.map(sha), all.map(sha), 'in order, intact (sha256)');
    t.equal(pair.datagramsDown, all.length, 'counted once each');
    t.equal(pair.down, all.reduce((n, d) => n + d.length, 0), 'payload bytes counted');
    t.equal(pair.drops, 0, 'nothing dropped');
    const after = engine.udpOffload();
    if (!offloadKernel) t.comment(`kernel ${os.release()} predates UDP segmentation offload (4.18): the runs went one datagram a message`);
    else {
      t.equal(after.unavailable, before.unavailable, 'the pair found offload available (kernel 4.18+, loopback MTU)');
      t.ok(after.segmented > before.segmented, `runs went as segmented messages (${after.segmented - before.segmented})`);
      t.equal(after.fallbacks, before.fallbacks, 'none refused on loopback');
    }
    pair.abort();
    await done;
  });

  /**
   * Queues `burst` on a socket of a datagram pair before the pair starts (so the engine finds it
   * all at once), then starts it and waits until every datagram came out sealed on the data
   * connection (or 2 s passed). Returns what was opened there and the pair (aborted at the end).
   */
  async function sealQueuedBurst(t: Test, burst: Buffer[], bufferBytes: number) {
    const client = await udp(t);
    const port = await freePort();
    const keys = keyPairs();
    const fd = engine!.udpSocket({ v6: false, bindHost: '127.0.0.1', bindPort: port, connect: { host: '127.0.0.1', port: client.address().port }, bufferBytes });
    const [peer, sealed] = await unreadPair(t);
    for (const d of burst) client.send(d, port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 50)); // (lets node:dgram's queued sends reach the socket before the engine starts)
    const raw: Buffer[] = [];
    peer.on('data', (c: Buffer) => raw.push(c));
    peer.resume();
    const pair = engine!.addUdp(fd, sealed, keys.a);
    engine!.closeFd(fd);
    const done = ended(pair, sealed);
    t.teardown(async () => {
      pair.abort();
      await done;
    });
    const deadline = Date.now() + 2_000;
    let opened = openUnits(keys.b.down, Buffer.concat(raw));
    while (unframe(opened.payload).length < burst.length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
      opened = openUnits(keys.b.down, Buffer.concat(raw));
    }
    return { opened, datagrams: unframe(opened.payload), pair };
  }

  t.test('large datagrams, up to the largest, fill units of at most 256 KiB: in order, none lost, no wait for more', async (t) => {
    // Four fit a 256 KiB unit; the rest must follow in the next units without another datagram's wake-up.
    const burst = Array.from({ length: 20 }, (_, i) => randomBytes(i === 0 ? 65_507 : 50_000 + ((i * 7919) % 15_000)));
    const { opened, datagrams, pair } = await sealQueuedBurst(t, burst, 4 << 20);
    t.equal(datagrams.length, burst.length, 'all 20 sealed without another datagram arriving');
    t.same(datagrams.map(sha), burst.map(sha), 'in order, intact (the largest, 65,507 bytes, too)');
    t.ok(opened.units >= 5, `over ${opened.units} units (each under 256 KiB)`);
    t.equal(pair.datagramsUp, burst.length, 'counted once each');
  });

  t.test('a burst of 64-byte datagrams is sealed many to a unit', async (t) => {
    // Read in as few units as the unit allows.
    const burst = Array.from({ length: 600 }, (_, i) => Buffer.alloc(64, i & 0xff));
    const { opened, datagrams } = await sealQueuedBurst(t, burst, 1 << 20);
    t.equal(datagrams.length, 600, 'all 600 sealed');
    t.same(datagrams.map(sha), burst.map(sha), 'in order, intact');
    t.ok(opened.units <= 3, `in ${opened.units} units (at most 256 datagrams each)`);
  });

  t.test('after the burst tests (their pairs aborted at teardown), no pair is left', async (t) => {
    t.equal(engine.live, 0);
  });
}
