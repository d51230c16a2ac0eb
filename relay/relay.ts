/**
 * The relay: composes store, tunnel listener, agent sessions, public-port
 * publishers and the management API, implements the hooks the API calls, and
 * drains on stop.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { RelayConfig } from '../shared/config/types.js';
import type { Logger } from '../shared/logging.js';
import { PorticoError, isPorticoError } from '../shared/errors.js';
import { VERSION } from '../shared/version.js';
import { tlsServerTransport } from '../shared/transport/tls.js';
import type { ListenOptions, PeerInfo, TransportListener } from '../shared/transport/transport.js';
import { tunnelUpgradeHandler } from '../shared/transport/websocket.js';
import type { Duplex } from 'node:stream';
import { openStore } from './store/index.js';
import type { Store } from './store/store.js';
import { allocateBlock } from './ports/allocator.js';
import { ensureDevCerts } from './tls/dev-certs.js';
import { acceptAgent } from './sessions/accept.js';
import { SessionRegistry } from './sessions/registry.js';
import type { AgentSession } from './sessions/agent-session.js';
import { LoopGuard } from './proxies/loop-guard.js';
import { relayPublishers } from './proxies/registry.js';
import type { PortPublisher } from './proxies/types.js';
import { resolveMappings } from './mappings/resolve.js';
import { WebProxy } from './vhost/https-server.js';
import { buildApi } from './api/app.js';
import { loadOrCreateAdminKey, type AdminKey } from './api/admin-key.js';
import { authenticateKey } from './api/auth.js';
import type { ErrorMsg } from '../proto/index.js';
import type { RelayHooks, ServerStatus } from './api/types.js';
import { Observability } from './observability.js';
import { loadOrCreateMetricsKeyHash, registerMetricsRoute } from './stats/metrics-route.js';
import { SealedRendezvous } from './sealed/rendezvous.js';
import { sealedEngine, sealedProblem, type SealedEngine } from '../shared/sealed/engine.js';

/** How long an earlier agent connection of a server has to send anything (a pong, data) after a ping when a new one arrives. */
const LIVENESS_PING_MS = 3_000;

/**
 * The tunnel listener's hooks for routing a new connection by its first byte
 * without reading a TLS one (SealedEngine.firstByte, deferAccept).
 */
function sealedListenHooks(engine: SealedEngine, handshakeTimeoutMs: number): Pick<ListenOptions, 'firstByte' | 'deferAccept'> {
  return {
    firstByte: (raw) => engine.firstByte(raw),
    deferAccept: (server) => void engine.deferAccept(server, handshakeTimeoutMs / 1000),
  };
}

/**
 * Ports handed out by allocatePorts stay taken until releasePorts (the server
 * record holds them from then on), at most this long if creation never reports back.
 */
const PENDING_ALLOCATION_MS = 60_000;

export interface RelayTls {
  cert: string;
  key: string;
  /** The dev CA's path (agents pass it with --ca), when --dev made one. */
  caPath?: string;
}

export class Relay implements RelayHooks {
  readonly registry = new SessionRegistry();
  readonly loopGuard = new LoopGuard();
  readonly publishers: PortPublisher[];
  private tunnel: TransportListener | null = null;
  private wsTunnel: ReturnType<typeof tunnelUpgradeHandler> | null = null;
  private api: FastifyInstance | null = null;
  /** The HTTPS web proxy and its plain-HTTP redirect. */
  web: WebProxy | null = null;
  private accepting = true;
  /** Tunnel connections closed at accept by tunnel.max_pending_per_ip. */
  private pendingRefused = 0;
  private readonly pendingPorts = new Map<number, number>();
  /** The agent.yaml mappings each server's connected agents declared (relay/sessions/accept.ts). */
  private readonly declarations = new Map<string, { key: string; rejected: ErrorMsg[] }>();
  /** The tail of each server's chain of agent handshakes (perServer). */
  private readonly handshakes = new Map<string, Promise<void>>();
  readonly obs: Observability;
  /** Where sealed data connections meet their streams; null when tunnel.sealed_data is off or the engine is not built. */
  readonly sealed: SealedRendezvous | null;

  private constructor(
    readonly config: RelayConfig,
    readonly logger: Logger,
    readonly store: Store,
    readonly adminKey: AdminKey,
    readonly tls: RelayTls,
  ) {
    // Health, replicas, usage statistics and metrics (relay/observability.ts).
    this.obs = new Observability({ config, logger, store, registry: this.registry });
    this.sealed = config.tunnel.sealedData && sealedEngine() ? new SealedRendezvous(logger, config.tunnel.handshakeTimeout, config.tunnel.maxPendingPerIp) : null;
    if (config.tunnel.sealedData && !this.sealed) logger.info(`sealed data path ${sealedProblem()}; raw TCP streams ride the TLS mux`);
    const deps = { config, logger, registry: this.registry, loopGuard: this.loopGuard, obs: this.obs, ...(this.sealed ? { sealed: this.sealed } : {}) };
    this.publishers = Object.values(relayPublishers).map((make) => make(deps));
    this.registry.on('offline', (s: AgentSession) => {
      s.logger.info('agent offline');
      // No agent left: the next one to connect declares the server's agent.yaml mappings afresh
      // (unless one is connecting right now: its declaration is already recorded).
      if (!this.handshakes.has(s.serverId)) this.declarations.delete(s.serverId);
      for (const p of this.publishers) void p.closeServer(s.serverId);
    });
  }

  static async start(config: RelayConfig, logger: Logger): Promise<Relay> {
    const store = await openStore(config.store.url, config.dataDir);
    try {
      const adminKey = await loadOrCreateAdminKey(config.dataDir);
      const tls = await loadTls(config);
      const relay = new Relay(config, logger, store, adminKey, tls);
      await relay.listen();
      return relay;
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  /** Where each listener ended up (ports may have been 0 in tests). */
  get addresses(): { tunnel: string; api: string; https: string; http: string } {
    const api = this.api?.server.address();
    const apiAddr = api && typeof api === 'object' ? `${api.address}:${api.port}` : '';
    return { tunnel: this.tunnel ? `${this.tunnel.host}:${this.tunnel.port}` : '', api: apiAddr, https: this.web?.addresses.https ?? '', http: this.web?.addresses.http ?? '' };
  }

  /** Every transport hands its connections here. */
  private readonly onAgentConnection = (conn: Duplex, peer: PeerInfo): void =>
    acceptAgent(conn, peer, {
      config: this.config,
      logger: this.logger,
      store: this.store,
      relayVersion: VERSION,
      accepting: () => this.accepting,
      onAuthenticated: (s) => this.online(s),
      peers: (serverId) => this.registry.peersOf(serverId).length,
      serialize: (serverId, fn) => this.perServer(serverId, fn),
      confirmPeers: async (serverId) => (await Promise.all(this.registry.peersOf(serverId).map((o) => this.stillAlive(o)))).filter(Boolean).length,
      declarations: this.declarations,
      sealed: this.sealed !== null,
    });

  private async listen(): Promise<void> {
    const { config, logger } = this;
    const engine = sealedEngine();
    this.tunnel = await tlsServerTransport.listen(
      { host: config.tunnel.listen.host, port: config.tunnel.listen.port, cert: this.tls.cert, key: this.tls.key, handshakeTimeout: config.tunnel.handshakeTimeout, maxPendingPerIp: config.tunnel.maxPendingPerIp, ...(this.sealed && engine ? { onSealed: this.sealed.accept.bind(this.sealed), ...sealedListenHooks(engine, config.tunnel.handshakeTimeout) } : {}) },
      this.onAgentConnection,
      (err, peer) => {
        const fields = { peer: peer ? `${peer.remoteAddress}:${peer.remotePort}` : undefined, err: err.message };
        // Refusals of a flood are counted and told now and then, not logged one by one.
        if (isPorticoError(err) && err.code === 'RATE_LIMITED') {
          if (this.pendingRefused++ % 1000 === 0) logger.warn({ ...fields, refused: this.pendingRefused }, 'tunnel.max_pending_per_ip reached; closing connections from that address');
        } else logger.debug(fields, 'tunnel connection failed before a session');
      },
    );
    // The WebSocket fallback (wss://<relay>/_tunnel) rides on the HTTPS listener, for any host that is not an app's.
    this.wsTunnel = tunnelUpgradeHandler(this.onAgentConnection, (host) => this.web?.router.lookup(host) !== undefined || this.obs.replicas.lookupHost(host) !== undefined);
    const ws = this.wsTunnel;
    await this.obs.start();
    this.web = await WebProxy.start({
      obs: this.obs,
      config,
      logger,
      store: this.store,
      registry: this.registry,
      devTls: this.tls,
      tunnelUpgrade: (req, socket, head) => this.accepting && ws.handle(req, socket, head),
      // The admin key and owner keys sign in at endpoints too (they can change access control anyway).
      managementKey: async (key) => {
        const p = await authenticateKey(key, this.adminKey.hash, this.store);
        if (!p) return null;
        return p.kind === 'admin' ? { admin: true } : { admin: false, owner: p.owner };
      },
    });
    this.api = await buildApi({ store: this.store, config, logger, adminKeyHash: this.adminKey.hash, relay: this });
    registerMetricsRoute(this.api, { admin: this.adminKey.hash, metrics: await loadOrCreateMetricsKeyHash(config.dataDir) });
    await this.api.listen({ host: config.api.listen.host, port: config.api.listen.port });
  }

  /**
   * A new agent connection of a server joins the ones already there (replica
   * agents run with one token); those that do not answer a ping within
   * LIVENESS_PING_MS are dead leftovers (a container that went away, a
   * reconnect after a network break) and are closed.
   */
  private async online(session: AgentSession): Promise<void> {
    if (!this.accepting) throw new PorticoError('SHUTTING_DOWN', 'relay is shutting down; retry shortly');
    const others = this.registry.add(session);
    for (const o of others) void this.stillAlive(o);
    await this.web?.refresh(session.serverId); // the hello may have changed agent-declared mappings
    await this.obs.serverChanged(session.serverId);
    await this.publish(session.serverId, session.mappings);
    // The other agents of the server serve the table this hello produced too.
    for (const o of others) o.update(session.server, session.mappings);
    // stop() began while this was being set up: its sweep of the sessions may have missed this one.
    if (!this.accepting) session.mux.destroy(new PorticoError('SHUTTING_DOWN', 'relay stopped'));
  }

  /** Runs `fn` after the earlier calls for the same server (agent handshakes of one server, one at a time). */
  private perServer<T>(serverId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.handshakes.get(serverId) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.handshakes.set(serverId, tail);
    void tail.then(() => {
      if (this.handshakes.get(serverId) === tail) this.handshakes.delete(serverId);
    });
    return run;
  }

  /**
   * Pings an agent session; one that sends nothing (a pong, or any frame: a
   * busy agent's pong may queue behind its data) within LIVENESS_PING_MS is
   * a dead leftover and is closed. Resolves true when it is alive.
   */
  private async stillAlive(o: AgentSession): Promise<boolean> {
    if (await o.mux.probe(LIVENESS_PING_MS)) return true;
    if (!o.closed) {
      o.logger.info(`an agent connection of this server sent nothing for ${LIVENESS_PING_MS} ms after a ping while another connected; closing it`);
      o.mux.destroy(new PorticoError('TIMEOUT', `agent connection sent nothing for ${LIVENESS_PING_MS} ms after a ping`));
    }
    return false;
  }

  private async publish(serverId: string, mappings: AgentSession['mappings']): Promise<void> {
    await Promise.all(this.publishers.map((p) => p.sync(serverId, mappings)));
  }

  // ---- RelayHooks (called by the management API) ----

  async allocatePorts(count: number): Promise<number[]> {
    const now = Date.now();
    for (const [p, at] of this.pendingPorts) if (now - at > PENDING_ALLOCATION_MS) this.pendingPorts.delete(p);
    const taken = new Set<number>(this.pendingPorts.keys());
    for (const s of await this.store.listServers()) for (const p of s.ports) taken.add(p);
    const c = this.config;
    const own = [c.tunnel.listen.port, c.api.listen.port, c.https.listen.port, c.http.listen.port];
    const ports = await allocateBlock({ range: c.ports.range, count, reserved: [...c.ports.reserved, ...own], taken, bindHost: c.ports.bind });
    for (const p of ports) this.pendingPorts.set(p, now);
    return ports;
  }

  releasePorts(ports: number[]): void {
    for (const p of ports) this.pendingPorts.delete(p);
  }

  serverStatus(id: string): ServerStatus {
    const all = this.registry.sessionsOf(id);
    const s = all[0];
    const udp = this.publishers.find((p) => p.protocol === 'udp')?.serverCounters?.(id) ?? null;
    if (!s) return { online: false, agentVersion: null, connectedSince: null, remoteAddress: null, openStreams: 0, udp, transport: null, agents: 0 };
    const openStreams = all.reduce((n, x) => n + x.openStreams, 0);
    return { online: true, agentVersion: s.agentVersion, connectedSince: s.connectedAt.toISOString(), remoteAddress: s.peer.remoteAddress, openStreams, udp, transport: s.peer.transport, agents: all.length };
  }

  async serverChanged(id: string): Promise<void> {
    await this.web?.refresh(id);
    await this.obs.serverChanged(id);
    const sessions = this.registry.sessionsOf(id);
    if (sessions.length === 0) return;
    const server = await this.store.getServer(id);
    if (!server) return;
    const mappings = resolveMappings(server, await this.store.listMappings(id));
    await this.publish(id, mappings);
    for (const session of sessions) session.update(server, mappings);
  }

  async serverDeleted(id: string): Promise<void> {
    this.declarations.delete(id);
    for (const s of this.registry.sessionsOf(id)) s.terminate('TOKEN_REVOKED', `server ${id} was deleted`);
    await Promise.all(this.publishers.map((p) => p.closeServer(id)));
    await this.web?.refresh(id);
    this.obs.serverDeleted(id);
  }

  async tokenRotated(id: string): Promise<void> {
    for (const s of this.registry.sessionsOf(id)) s.terminate('TOKEN_REVOKED', `the agent token of server ${id} was rotated`);
  }

  async userDeleted(id: string): Promise<void> {
    // Access control: cached credential checks and the user's browser sessions end at once.
    this.web?.proxy.access.userDeleted(id);
  }

  // ---- shutdown ----

  /** Stops accepting, tells agents, lets open streams finish up to graceMs, then closes everything. */
  async stop(graceMs = this.config.shutdownGrace): Promise<void> {
    if (!this.accepting) return;
    this.accepting = false;
    const { logger } = this;
    this.web?.close();
    // Likewise the public listeners: they stop accepting now, and their close() resolves once their
    // connections are gone — awaited after the grace period, not before it (a held SSH or TCP
    // connection kept the relay from exiting at all).
    const publishersClosed = Promise.all(this.publishers.map((p) => p.close()));
    for (const s of this.registry.all()) {
      s.control.send({ shutdown: { reason: 'relay shutting down', graceMs } });
      s.mux.goAway();
    }
    const deadline = Date.now() + graceMs;
    while (this.registry.openStreams > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (this.registry.openStreams > 0) logger.warn({ streams: this.registry.openStreams }, 'grace period over; closing open streams');
    // The tunnel listener stays open through the grace period — connections accepted before the stop
    // still need their sealed data connections, and a new agent hears SHUTTING_DOWN instead of a refusal —
    // and stops accepting now. Its close() resolves only when the agents' connections end, which happens
    // below (awaiting it here hung stop() until the process was killed, losing the final stats flush).
    const tunnelClosed = this.tunnel?.close();
    this.web?.destroy();
    for (const s of this.registry.all()) s.mux.destroy(new PorticoError('SHUTTING_DOWN', 'relay stopped'));
    this.wsTunnel?.close();
    await publishersClosed;
    await tunnelClosed;
    await this.api?.close();
    await this.obs.stop();
    await this.store.close();
  }
}

async function loadTls(config: RelayConfig): Promise<RelayTls> {
  if (config.tunnel.cert && config.tunnel.key) {
    return { cert: readFileSync(config.tunnel.cert, 'utf8'), key: readFileSync(config.tunnel.key, 'utf8') };
  }
  if (!config.dev) throw new PorticoError('CONFIG_INVALID', 'tunnel.cert and tunnel.key are required unless --dev', { key: 'tunnel.cert' });
  const dev = await ensureDevCerts(config.dataDir, config.domain, config.publicHostname);
  return { cert: dev.cert, key: dev.key, caPath: dev.caPath };
}
