/**
 * Raw UDP publishing: one datagram socket per public port while the server's
 * agent is online and UDP is enabled. Each client flow (source addr:port) gets
 * its own mux stream to the agent (StreamKind.UDP) carrying length-prefixed
 * datagrams both ways (shared/framing/datagram.ts), so a slow or stalled flow
 * only fills its own bounded queue. Flows expire after udp.flow_idle_timeout
 * without a datagram either way and are capped per server.
 *
 * A busy flow (SEAL_AFTER_DATAGRAMS one way) whose agent can is
 * moved onto a sealed data connection moved by the native engine
 * (udp-sealed.ts); the public sockets are bound with SO_REUSEPORT for it.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { errorCodeFromWire } from '../../shared/errors.js';
import { DatagramDecoder } from '../../shared/framing/datagram.js';
import { DatagramWriter, type QueueLimits } from '../../shared/udp/datagram-writer.js';
import { isLocalAddress, normalizeAddress } from '../../shared/util/net.js';
import type { MuxStream } from '../../shared/mux/index.js';
import { StreamKind } from '../../proto/index.js';
import type { AgentSession } from '../sessions/agent-session.js';
import type { ResolvedMapping } from '../mappings/resolve.js';
import { LoopGuard } from './loop-guard.js';
import type { PortPublisher, PublishProblem, PublisherDeps } from './types.js';
import { rawIpAllowed } from '../access/raw.js';
import type { LiveConn } from '../stats/usage.js';
import { sealedEngine, type SealedUdpPair } from '../../shared/sealed/engine.js';
import { sealFlow, type SealingFlow } from './udp-sealed.js';

/** How long the agent has to answer a flow's stream header. */
const OPEN_TIMEOUT_MS = 15_000;
/** After the agent refused a flow, its datagrams are dropped this long before a new try. */
const FAILED_FLOW_HOLD_MS = 1_000;
/** Kernel buffers of the public sockets (capped by net.core.[rw]mem_max). */
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;
/** Datagrams allowed to wait in libuv for a public socket before we drop instead. */
const SEND_QUEUE_MAX = 4096;
/** A flow is moved onto a sealed data connection once this many datagrams came from its client (or from the app). */
const SEAL_AFTER_DATAGRAMS = 64;
/**
 * Sealed flows per public port: each is a connected socket on that port,
 * and the kernel looks a datagram's socket up along that list.
 */
const MAX_SEALED_FLOWS_PER_PORT = 32;
/** At most one overload / cap warning per server this often. */
const WARN_INTERVAL_MS = 5_000;

/** Defaults for the optional udp.* keys (the config loader always fills them). */
const DEFAULT_MAX_FLOWS = 1024;
const DEFAULT_QUEUE: QueueLimits = { datagrams: 256, bytes: 256 * 1024 };

/** UDP counters of one server (live flows, and totals since the relay started). */
export interface UdpServerStats {
  flows: number;
  datagramsIn: number;
  datagramsOut: number;
  /** Datagrams dropped by the relay: a flow's queue overflowed (oldest first) or a public socket's send queue was full. */
  drops: number;
  /** Datagrams of new flows refused because the server was at udp.max_flows_per_server. */
  refusedByCap: number;
  expiredFlows: number;
  /** Flows running on a sealed data connection now, and all that did since the relay started. */
  sealedFlows: number;
  sealedTotal: number;
}

interface PortSocket {
  serverId: string;
  port: number;
  /** mapping id + internal port: when it changes, live flows are closed so new datagrams reach the new target. */
  target: string;
  socket: dgram.Socket;
  flows: Map<string, RelayFlow>;
  /** The flow of the previous datagram: a burst from one client finds its flow without building the map key. */
  last: RelayFlow | null;
  /** Bound with SO_REUSEPORT by the engine: flows on it can be sealed. */
  sealable: boolean;
  v6: boolean;
  /** Flows on it sealed or being sealed now. */
  sealedFlows: number;
}

type FlowState = 'opening' | 'open' | 'failed' | 'closed';

class RelayFlow {
  state: FlowState = 'opening';
  stream: MuxStream | null = null;
  lastActive = Date.now();
  failedUntil = 0;
  readonly writer: DatagramWriter;
  readonly clientAddress: string;
  rx = 0;
  tx = 0;
  sendDrops = 0;
  /** Payload bytes each way (aToB = client -> app), read by the usage statistics while the flow is open. */
  readonly bytes = { aToB: 0, bToA: 0 };
  /** The usage statistics' handle while the flow is open (relay/observability.ts). */
  live: LiveConn | null = null;
  /** The agent serving it, once its stream is open. */
  session: AgentSession | null = null;
  /** The datagram count (either way) at which sealing is (next) considered. */
  sealAt = SEAL_AFTER_DATAGRAMS;
  sealing: SealingFlow | null = null;
  /** The engine's pair while the flow runs sealed, and its counters already added to the flow's. */
  pair: SealedUdpPair | null = null;
  readonly pairSeen = { up: 0, down: 0, datagramsUp: 0, datagramsDown: 0, drops: 0 };

  constructor(
    readonly key: string,
    readonly ps: PortSocket,
    readonly rinfoAddress: string,
    readonly clientPort: number,
    /** The server's counters (held here so the per-datagram path does no map lookup). */
    readonly stats: UdpServerStats,
    limits: QueueLimits,
    onDrop: (n: number) => void,
  ) {
    this.clientAddress = normalizeAddress(rinfoAddress);
    this.writer = new DatagramWriter(limits, onDrop);
  }

  get drops(): number {
    return this.writer.dropped + this.sendDrops + this.pairSeen.drops;
  }
}

export function createUdpPublisher(deps: PublisherDeps): UdpPublisher {
  return new UdpPublisher(deps);
}

export class UdpPublisher implements PortPublisher {
  readonly protocol = 'udp' as const;
  /** Loops over UDP are told apart from TCP ones (same port numbers, other sockets). */
  readonly loopGuard = new LoopGuard();
  private readonly sockets = new Map<number, PortSocket>();
  private readonly stats = new Map<string, UdpServerStats>();
  private readonly lastWarn = new Map<string, { at: number; suppressed: number }>();
  private readonly limits: QueueLimits;
  private readonly maxFlows: number;
  private sweeper: NodeJS.Timeout | null = null;
  private flowCount = 0;
  private dropTotal = 0;
  private closing = false;

  constructor(private readonly deps: PublisherDeps) {
    const u = deps.config.udp;
    this.limits = { datagrams: u.queueDatagrams ?? DEFAULT_QUEUE.datagrams, bytes: u.queueBytes ?? DEFAULT_QUEUE.bytes };
    this.maxFlows = u.maxFlowsPerServer ?? DEFAULT_MAX_FLOWS;
  }

  get listening(): number {
    return this.sockets.size;
  }

  get connections(): number {
    return this.flowCount;
  }

  /** Live flows across all servers. */
  get flows(): number {
    return this.flowCount;
  }

  /** Datagrams dropped by the relay since it started. */
  get drops(): number {
    return this.dropTotal;
  }

  /** The UDP counters of one server, or null if it never had UDP traffic. */
  serverStats(serverId: string): UdpServerStats | null {
    const s = this.stats.get(serverId);
    return s ? { ...s } : null;
  }

  serverCounters(serverId: string): Record<string, number> | null {
    const s = this.serverStats(serverId);
    return s ? { ...s } : null;
  }

  /** Public UDP ports bound for a server now. */
  portsOf(serverId: string): number[] {
    return [...this.sockets.values()].filter((p) => p.serverId === serverId).map((p) => p.port);
  }

  async sync(serverId: string, mappings: ResolvedMapping[]): Promise<PublishProblem[]> {
    if (this.closing) return []; // stopping: no new listeners (a handshake finishing late)
    const want = new Map<number, ResolvedMapping>();
    for (const m of mappings) if (m.protocol === 'udp') want.set(m.externalPort, m);
    const closes: Promise<void>[] = [];
    for (const ps of this.sockets.values()) {
      if (ps.serverId !== serverId) continue;
      const m = want.get(ps.port);
      if (!m) closes.push(this.closeSocket(ps, 'unpublished'));
      else if (targetOf(m) !== ps.target) {
        ps.target = targetOf(m);
        for (const f of [...ps.flows.values()]) this.closeFlow(f, 'mapping changed');
      }
    }
    await Promise.all(closes);
    const problems: PublishProblem[] = [];
    await Promise.all(
      [...want.values()].map(async (m) => {
        const port = m.externalPort;
        const have = this.sockets.get(port);
        if (have) {
          if (have.serverId !== serverId) problems.push({ port, code: 'PORT_ALREADY_MAPPED', message: `udp port ${port} is served for server ${have.serverId}` });
          return;
        }
        try {
          await this.bind(serverId, port, targetOf(m));
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          const message = `cannot bind udp ${this.deps.config.ports.bind}:${port} (${e.code ?? e.message}): another process on the relay host holds it`;
          this.deps.logger.error({ server: serverId, port, err: e.code ?? e.message }, message);
          problems.push({ port, code: 'INTERNAL', message });
        }
      }),
    );
    return problems;
  }

  async closeServer(serverId: string): Promise<void> {
    await Promise.all([...this.sockets.values()].filter((p) => p.serverId === serverId).map((p) => this.closeSocket(p, 'agent offline')));
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.sockets.values()].map((p) => this.closeSocket(p, 'relay stopping')));
    this.stopSweeper();
  }

  // ---- sockets ----

  private bind(serverId: string, port: number, target: string): Promise<void> {
    const host = this.deps.config.ports.bind;
    const v6 = net.isIPv6(host);
    // '::' is dual-stack (IPv4 clients arrive as ::ffff:a.b.c.d); '0.0.0.0' is IPv4 only, like the TCP listeners.
    const socket = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4', reuseAddr: false });
    // Where flows can be sealed, the engine binds the socket (SO_REUSEPORT: a sealed flow gets a connected socket on the same port).
    const engine = this.deps.sealed && net.isIP(host) !== 0 ? sealedEngine() : null;
    let fd = -1;
    if (engine) {
      try {
        fd = engine.udpSocket({ v6, bindHost: host, bindPort: port, bufferBytes: 0 });
      } catch (err) {
        socket.close();
        return Promise.reject(err);
      }
    }
    const ps: PortSocket = { serverId, port, target, socket, flows: new Map(), last: null, sealable: fd >= 0, v6, sealedFlows: 0 };
    this.sockets.set(port, ps);
    return new Promise<void>((resolve, reject) => {
      socket.once('error', (err) => {
        if (this.sockets.get(port) === ps) this.sockets.delete(port);
        socket.close();
        reject(err);
      });
      socket.bind(fd >= 0 ? { fd } : { port, address: host, exclusive: true }, () => {
        socket.removeAllListeners('error');
        socket.on('error', (err) => this.deps.logger.debug({ server: serverId, port, err: err.message }, 'public udp socket error'));
        try {
          socket.setRecvBufferSize(SOCKET_BUFFER_BYTES);
          socket.setSendBufferSize(SOCKET_BUFFER_BYTES);
        } catch {
          // Kernel limits: keep the defaults.
        }
        socket.on('message', (msg, rinfo) => this.onMessage(ps, msg, rinfo));
        resolve();
      });
    });
  }

  private closeSocket(ps: PortSocket, reason: string): Promise<void> {
    if (this.sockets.get(ps.port) === ps) this.sockets.delete(ps.port);
    for (const f of [...ps.flows.values()]) this.closeFlow(f, reason);
    return new Promise<void>((res) => {
      try {
        ps.socket.close(() => res());
      } catch {
        res(); // already closed
      }
    });
  }

  // ---- flows ----

  private onMessage(ps: PortSocket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    // Hot path (once per datagram): no allocation besides what node:dgram made.
    let flow = ps.last;
    if (flow === null || flow.clientPort !== rinfo.port || flow.rinfoAddress !== rinfo.address) {
      const key = `${rinfo.address}|${rinfo.port}`;
      const found = ps.flows.get(key) ?? this.newFlow(ps, key, rinfo);
      if (found === undefined) return;
      ps.last = flow = found;
    }
    flow.stats.datagramsIn++;
    flow.rx++;
    if (flow.state === 'failed') {
      this.countDrops(flow, 1);
      return;
    }
    flow.bytes.aToB += msg.length;
    flow.lastActive = Date.now();
    flow.writer.push(msg);
    if (flow.rx >= flow.sealAt) this.trySeal(flow);
  }

  /** Moves a busy flow onto a sealed data connection, when its agent, its port and the engine can. */
  private trySeal(flow: RelayFlow): void {
    const ps = flow.ps;
    const session = flow.session;
    const engine = sealedEngine();
    const rendezvous = this.deps.sealed;
    if (flow.state === 'opening') return; // (tried again once the agent accepts the flow)
    if (flow.state !== 'open' || flow.stream === null || session === null) {
      flow.sealAt = Infinity;
      return;
    }
    if (ps.sealedFlows >= MAX_SEALED_FLOWS_PER_PORT) {
      flow.sealAt += 16 * SEAL_AFTER_DATAGRAMS; // another flow may have ended by then
      return;
    }
    flow.sealAt = Infinity; // one try per flow
    if (!ps.sealable || !session.sealedUdp || !engine || !rendezvous) return;
    ps.sealedFlows++; // (counted from the try on, so a burst of new flows cannot pass the limit)
    flow.sealing = sealFlow({
      engine,
      rendezvous,
      session,
      stream: flow.stream,
      v6: ps.v6,
      bindHost: this.deps.config.ports.bind,
      port: ps.port,
      clientHost: flow.rinfoAddress,
      clientPort: flow.clientPort,
      bufferBytes: SOCKET_BUFFER_BYTES,
      timeoutMs: OPEN_TIMEOUT_MS,
      logger: this.deps.logger,
      onStray: (data, address, port) => this.onMessage(ps, data, { address, port, family: ps.v6 ? 'IPv6' : 'IPv4', size: data.length }),
      onSealed: (pair) => {
        flow.pair = pair;
        flow.stats.sealedFlows++;
        flow.stats.sealedTotal++;
        this.deps.logger.debug({ server: ps.serverId, port: ps.port, client: `${flow.clientAddress}:${flow.clientPort}` }, 'udp flow sealed');
      },
      onEnded: (code, ran) => {
        ps.sealedFlows--;
        flow.sealing = null;
        if (!ran) return;
        flow.stats.sealedFlows--;
        this.syncPair(flow);
        flow.pair = null;
        if (flow.state === 'open') this.deps.logger.debug({ server: ps.serverId, port: ps.port, code }, 'sealed udp flow ended; its stream carries it again');
      },
    });
    if (flow.sealing === null) ps.sealedFlows--; // (no secrets: the tunnel is going away)
  }

  /** Adds what a sealed flow's pair moved since the last look to the flow's and server's counters. */
  private syncPair(flow: RelayFlow): void {
    const p = flow.pair;
    if (p === null) return;
    const seen = flow.pairSeen;
    const up = p.up - seen.up;
    const down = p.down - seen.down;
    const dgUp = p.datagramsUp - seen.datagramsUp;
    const dgDown = p.datagramsDown - seen.datagramsDown;
    const drops = p.drops - seen.drops;
    if (dgUp === 0 && dgDown === 0 && drops === 0) return; // (bytes move only with datagrams; empty ones count too)
    seen.up += up;
    seen.down += down;
    seen.datagramsUp += dgUp;
    seen.datagramsDown += dgDown;
    seen.drops += drops;
    flow.lastActive = Date.now();
    flow.bytes.aToB += up;
    flow.bytes.bToA += down;
    flow.rx += dgUp;
    flow.tx += dgDown;
    flow.stats.datagramsIn += dgUp;
    flow.stats.datagramsOut += dgDown;
    if (drops > 0) this.countDrops(flow, drops);
  }

  private newFlow(ps: PortSocket, key: string, rinfo: dgram.RemoteInfo): RelayFlow | undefined {
    if (this.closing) return undefined;
    const registry = this.deps.registry;
    // Replica agents of one server: each new flow goes to the next one (preferring a passing health check).
    const session = registry.get(ps.serverId, registry.primary(ps.serverId)?.mappingForPort(ps.port, 'udp')?.id);
    const mapping = session?.mappingForPort(ps.port, 'udp');
    if (!session || !mapping) return undefined;
    // Access control: IP rules on the datagram's real source address (relay/access/raw.ts); refused datagrams are dropped.
    if (!rawIpAllowed(session.server, mapping, normalizeAddress(rinfo.address), { protocol: 'udp', port: ps.port, logger: this.deps.logger })) return undefined;
    const st = this.statsOf(ps.serverId);
    const max = this.maxFlows;
    if (st.flows >= max) {
      st.refusedByCap++;
      this.warn(
        `cap:${ps.serverId}`,
        { server: ps.serverId, port: ps.port, client: `${normalizeAddress(rinfo.address)}:${rinfo.port}`, max, refused: st.refusedByCap },
        (suppressed) =>
          `udp flow cap: server ${ps.serverId} already has ${max} flows (udp.max_flows_per_server), so a datagram from new flow ${normalizeAddress(rinfo.address)}:${rinfo.port} to public port ${ps.port} was dropped` +
          (suppressed > 0 ? ` (${suppressed} more refused since the last warning)` : ''),
      );
      return undefined;
    }
    const flow = new RelayFlow(key, ps, rinfo.address, rinfo.port, st, this.limits, (n) => this.countDrops(flow, n, true));
    ps.flows.set(key, flow);
    st.flows++;
    this.flowCount++;
    this.startSweeper();
    void this.open(flow, session, mapping);
    return flow;
  }

  private async open(flow: RelayFlow, session: AgentSession, mapping: ResolvedMapping): Promise<void> {
    const { logger } = this.deps;
    const ps = flow.ps;
    if (isLocalAddress(flow.clientAddress) && (await this.loopGuard.isLoop(flow.clientAddress, flow.clientPort, ps.port))) {
      this.loopGuard.refused++;
      logger.warn(
        { server: ps.serverId, port: ps.port, code: 'LOOP_DETECTED' },
        `refused a udp loop: datagrams forwarded by server ${ps.serverId}'s agent came back into the relay's own public port ${ps.port}; local_host points at the relay`,
      );
      this.fail(flow, this.deps.config.udp.flowIdleTimeout);
      return;
    }
    if (flow.state !== 'opening') return;
    let opened;
    try {
      opened = session.open(
        { mappingId: mapping.id, internalPort: mapping.internalPort, kind: StreamKind.UDP, clientAddress: flow.clientAddress, clientPort: flow.clientPort, publicPort: ps.port },
        OPEN_TIMEOUT_MS,
      );
    } catch {
      this.fail(flow, FAILED_FLOW_HOLD_MS);
      return;
    }
    const stream = opened.stream;
    flow.stream = stream;
    flow.session = session;
    stream.on('error', () => undefined);
    stream.once('close', () => {
      if (flow.stream === stream) this.closeFlow(flow, 'stream closed');
    });
    if (session.canLoop) this.loopGuard.track(mapping.internalPort, opened.opened, stream);
    // The first datagrams go out right behind the header (no round trip before a DNS query leaves).
    flow.writer.attach(stream);
    let result;
    try {
      result = await opened.opened;
    } catch (err) {
      logger.debug({ server: ps.serverId, port: ps.port, err: (err as Error).message }, 'udp flow open failed');
      this.fail(flow, FAILED_FLOW_HOLD_MS);
      return;
    }
    if (!result.ok) {
      const code = errorCodeFromWire(result.code ?? 0);
      logger.debug({ server: ps.serverId, port: ps.port, internalPort: mapping.internalPort, code }, result.message || 'agent refused the udp flow');
      this.fail(flow, FAILED_FLOW_HOLD_MS);
      return;
    }
    if (flow.state !== 'opening') return;
    flow.state = 'open';
    flow.live = this.deps.obs?.udpFlowOpened(ps.serverId, mapping.id, flow.clientAddress, flow.bytes) ?? null;
    logger.debug({ server: ps.serverId, port: ps.port, client: `${flow.clientAddress}:${flow.clientPort}`, flows: this.statsOf(ps.serverId).flows }, 'udp flow opened');
    const decoder = new DatagramDecoder((d) => this.toClient(flow, d));
    stream.on('data', (chunk: Buffer) => decoder.push(chunk));
    stream.once('end', () => this.closeFlow(flow, 'agent ended'));
    stream.resume();
    // A flow that got busy before the agent accepted it (a burst that outran the open) seals now.
    if (flow.rx >= flow.sealAt || flow.tx >= flow.sealAt) this.trySeal(flow);
  }

  private toClient(flow: RelayFlow, d: Buffer): void {
    if (flow.state === 'closed') return;
    const sock = flow.ps.socket;
    if (sock.getSendQueueCount() >= SEND_QUEUE_MAX) {
      flow.sendDrops++;
      this.countDrops(flow, 1, true);
      return;
    }
    flow.lastActive = Date.now();
    flow.tx++;
    flow.bytes.bToA += d.length;
    flow.stats.datagramsOut++;
    try {
      sock.send(d, flow.clientPort, flow.rinfoAddress);
    } catch {
      // Socket closed under us: the flow goes with it.
    }
    if (flow.tx >= flow.sealAt) this.trySeal(flow); // (a flow busy the other way: a stream the app sends)
  }

  /** Keeps a refused flow's entry (dropping its datagrams) for `holdMs`, then forgets it. */
  private fail(flow: RelayFlow, holdMs: number): void {
    if (flow.state === 'closed') return;
    flow.state = 'failed';
    flow.failedUntil = Date.now() + holdMs;
    flow.sealing?.cancel();
    flow.writer.close();
    const s = flow.stream;
    flow.stream = null;
    s?.destroy();
  }

  private closeFlow(flow: RelayFlow, reason: string): void {
    if (flow.state === 'closed') return;
    this.syncPair(flow);
    if (flow.live !== null) {
      this.deps.obs?.connectionClosed(flow.live);
      flow.live = null;
    }
    const wasFailed = flow.state === 'failed';
    flow.state = 'closed';
    const ps = flow.ps;
    if (ps.flows.get(flow.key) === flow) ps.flows.delete(flow.key);
    if (ps.last === flow) ps.last = null;
    const st = this.statsOf(ps.serverId);
    st.flows--;
    this.flowCount--;
    if (reason === 'idle') st.expiredFlows++;
    flow.sealing?.cancel();
    flow.writer.close();
    const s = flow.stream;
    flow.stream = null;
    if (s && !s.destroyed) {
      // FIN: the agent closes its socket and ends its side.
      s.end();
      const t = setTimeout(() => s.destroy(), 5_000);
      t.unref();
      s.once('close', () => clearTimeout(t));
    }
    if (!wasFailed) {
      this.deps.logger.debug(
        { server: ps.serverId, port: ps.port, client: `${flow.clientAddress}:${flow.clientPort}`, reason, datagramsIn: flow.rx, datagramsOut: flow.tx, drops: flow.drops, flows: st.flows },
        'udp flow closed',
      );
    }
    if (this.flowCount === 0) this.stopSweeper();
  }

  private countDrops(flow: RelayFlow, n: number, overload = false): void {
    const st = this.statsOf(flow.ps.serverId);
    st.drops += n;
    this.dropTotal += n;
    if (!overload) return;
    this.warn(
      `drop:${flow.ps.serverId}`,
      { server: flow.ps.serverId, port: flow.ps.port, drops: st.drops },
      (suppressed) =>
        `udp overload: server ${flow.ps.serverId} cannot take datagrams as fast as they arrive; dropped the oldest queued datagrams (${st.drops} dropped so far${suppressed > 0 ? `, ${suppressed} overflow events since the last warning` : ''})`,
    );
  }

  /** A warning at most once per WARN_INTERVAL_MS per key; the rest are counted into the next one. */
  private warn(key: string, fields: Record<string, unknown>, message: (suppressed: number) => string): void {
    const now = Date.now();
    const w = this.lastWarn.get(key);
    if (w && now - w.at < WARN_INTERVAL_MS) {
      w.suppressed++;
      return;
    }
    this.deps.logger.warn(fields, message(w?.suppressed ?? 0));
    this.lastWarn.set(key, { at: now, suppressed: 0 });
  }

  private statsOf(serverId: string): UdpServerStats {
    let s = this.stats.get(serverId);
    if (!s) this.stats.set(serverId, (s = { flows: 0, datagramsIn: 0, datagramsOut: 0, drops: 0, refusedByCap: 0, expiredFlows: 0, sealedFlows: 0, sealedTotal: 0 }));
    return s;
  }

  // ---- idle expiry: one sweep timer for all flows, a quarter of the timeout apart ----

  private startSweeper(): void {
    if (this.sweeper) return;
    const idle = this.deps.config.udp.flowIdleTimeout;
    const every = Math.max(25, Math.min(5_000, Math.floor(idle / 4)));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
  }

  private stopSweeper(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  private sweep(): void {
    const now = Date.now();
    const idle = this.deps.config.udp.flowIdleTimeout;
    for (const ps of this.sockets.values()) {
      for (const f of [...ps.flows.values()]) {
        this.syncPair(f);
        if (f.state === 'failed' ? now >= f.failedUntil : now - f.lastActive >= idle) this.closeFlow(f, f.state === 'failed' ? 'refused' : 'idle');
      }
    }
  }
}

function targetOf(m: ResolvedMapping): string {
  return `${m.id}:${m.internalPort}`;
}
