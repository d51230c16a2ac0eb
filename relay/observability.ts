/**
 * Health, replicas, usage statistics and metrics behind one object the relay
 * hands to the web proxy, the TCP publisher and the API. The proxies call it
 * at a few clearly marked points; everything it does there is a map lookup or
 * a counter (docs/observability.md, docs/replicas.md).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RelayConfig } from '../shared/config/types.js';
import type { Logger } from '../shared/logging.js';
import type { SpliceStats } from '../shared/util/splice.js';
import type { Store } from './store/store.js';
import type { SessionRegistry } from './sessions/registry.js';
import type { AgentSession } from './sessions/agent-session.js';
import { resolveMappings, type ResolvedMapping } from './mappings/resolve.js';
import { HealthRegistry, healthEnabled, type HealthStatus } from './health/registry.js';
import { ReplicaGroups, type ReplicaSet } from './replicas/groups.js';
import { UsageStats, type RequestObs } from './stats/usage.js';
import { metrics, setCollectors } from './metrics.js';
import { proxyErrors, type ProxyError } from './vhost/errors.js';
import type { Route } from './vhost/router.js';

export interface ObservabilityDeps {
  store: Store;
  config: RelayConfig;
  logger: Logger;
  registry: SessionRegistry;
  /** Usage statistics flush interval (default 10 s). */
  flushMs?: number;
}

/** A raw-TCP connection's destination after replica selection and the health gate. */
export interface TcpTarget {
  session: AgentSession;
  mapping: ResolvedMapping;
}

type LiveConn = ReturnType<UsageStats['connectionOpened']>;

export class Observability {
  readonly health = new HealthRegistry();
  readonly usage: UsageStats;
  readonly replicas: ReplicaGroups;
  private routeOf: ((host: string) => Route | undefined) | null = null;
  private readonly log: Logger;

  constructor(private readonly deps: ObservabilityDeps) {
    this.log = deps.logger.child({ component: 'health' });
    this.usage = new UsageStats({ store: deps.store, logger: deps.logger, flushMs: deps.flushMs });
    this.replicas = new ReplicaGroups(deps.store, deps.config, deps.registry);
    this.health.onChange = ({ record, previous }) => {
      const fields = { server: record.serverId, mapping: record.mappingId, status: record.status, previous, failures: record.consecutiveFailures, detail: record.detail };
      if (record.status === 'unhealthy') this.log.warn(fields, 'mapping unhealthy');
      else this.log.info(fields, `mapping health ${record.status}`);
    };
    deps.registry.on('online', (s: AgentSession) => this.attach(s));
    deps.registry.on('offline', (s: AgentSession) => this.health.offline(s.serverId));
    // A replica left or began draining: the API's health view follows the server's oldest usable
    // session, which may now be another one.
    const followPrimary = (s: AgentSession) => {
      const primary = deps.registry.primary(s.serverId);
      if (primary) this.health.report(s.serverId, primary.mappings, primary.healthStates());
    };
    deps.registry.on('replica-offline', followPrimary);
    deps.registry.on('replica-draining', followPrimary);
  }

  async start(): Promise<void> {
    await this.usage.start();
    await this.replicas.load();
    const registry = this.deps.registry;
    setCollectors({ agentsOnline: () => registry.sessions, streamsOpen: () => registry.openStreams, beforeScrape: () => this.usage.syncLive(), mappingSeries: () => this.usage.series() });
  }

  /** Flushes statistics (call before the store closes). */
  async stop(): Promise<void> {
    setCollectors(null);
    await this.usage.stop();
  }

  /** The web proxy's host table, for the member routes of group hosts. */
  setRouteLookup(lookup: (host: string) => Route | undefined): void {
    this.routeOf = lookup;
  }

  // ---- relay events ----

  /**
   * Health reports of a new session are kept per session (routing between
   * replica agents of one server) and, from the server's oldest session,
   * applied to the API's view against its current forwarding table.
   */
  private attach(session: AgentSession): void {
    session.control.setHandlers({
      healthReport: (env) => {
        if (!('healthReport' in env) || session.closed) return;
        const states = env.healthReport.states ?? [];
        session.noteHealth(states);
        if (this.deps.registry.primary(session.serverId) === session) this.health.report(session.serverId, session.mappings, states);
      },
    });
  }

  /** After a server's mappings, owner or health checks changed (API, agent hello): re-reads it from the store. */
  async serverChanged(serverId: string): Promise<void> {
    await this.replicas.refresh(serverId);
    const server = await this.deps.store.getServer(serverId);
    const stored = server ? await this.deps.store.listMappings(serverId) : [];
    const mappings = server ? resolveMappings(server, stored) : [];
    this.health.retain(serverId, mappings);
    // Statistics of every stored mapping are kept, published or not (a udp mapping while UDP is off).
    this.usage.retain(serverId, [...new Set([...mappings.map((m) => m.id), ...stored.map((m) => m.id)])]);
  }

  /** The server is being deleted: forget its members, health and statistics. */
  serverDeleted(serverId: string): void {
    this.replicas.forget(serverId);
    this.health.retain(serverId, []);
    this.usage.retain(serverId, []);
  }

  // ---- web proxy ----

  beginRequest(req: IncomingMessage, res: ServerResponse): RequestObs {
    return this.usage.beginRequest(req, res);
  }

  /** Tells the request's statistics which mapping served it. */
  routed(obs: RequestObs | null | undefined, route: Route): void {
    if (!obs) return;
    obs.usage = this.usage.usage(route.serverId, route.mappingId);
    // In flight until the response closes (endRequest) — unless it closed already (a client that
    // left while the route was looked up).
    if (!obs.ended) {
      obs.usage.openRequests++;
      obs.inFlight = true;
    }
  }

  /**
   * For a replica group's host: the route of the next eligible member, or a
   * 503 when none is; undefined when the host is not a group's.
   */
  groupRoute(hostHeader: string | undefined): Route | ProxyError | undefined {
    const set = this.replicas.lookupHost(hostHeader);
    if (!set) return undefined;
    // A member whose route is missing (refresh in flight) is skipped; bounded by the member count.
    for (let i = 0; i < set.members.length; i++) {
      const picked = this.replicas.pick(set, true);
      if (!picked) break;
      const route = picked.member.httpsToken ? this.routeOf?.(`${picked.member.httpsToken}.secure.${this.deps.config.domain}`) : undefined;
      if (route) return route;
    }
    metrics.unhealthyRefused.inc({ server: '', mapping: set.group });
    return proxyErrors.noHealthyReplica(set.group, set.members.length);
  }

  /** A WebSocket tunnel opened through a route; returns the handle for tunnelClosed. */
  tunnelOpened(route: Route, clientIp: string, stats: SpliceStats): LiveConn {
    return this.usage.connectionOpened(this.usage.usage(route.serverId, route.mappingId), clientIp, stats, 'websocket');
  }

  // ---- raw TCP ----

  /**
   * Where a new connection to a public port goes: for a replica group's
   * member port the next eligible member (any server; null = none, refuse),
   * otherwise the mapping itself. Health only chooses between replicas: a
   * lone mapping that fails its check is still tried (fail open), so the
   * client sees the real outcome — the app's answer, or "nothing is
   * listening" — and a wrong check path cannot take a working app offline.
   */
  tcpTarget(session: AgentSession, mapping: ResolvedMapping): TcpTarget | null {
    const registry = this.deps.registry;
    let serverId = session.serverId;
    let mappingId = mapping.id;
    if (mapping.group) {
      const set = this.replicas.setOf(session.server.owner, mapping.group);
      if (set) {
        const p = this.replicas.pick(set, false);
        if (!p) {
          metrics.unhealthyRefused.inc({ server: session.serverId, mapping: mapping.id });
          return null;
        }
        serverId = p.member.serverId;
        mappingId = p.member.mappingId;
      }
    }
    // The one cursor move of this connection: the chosen server's next agent (several may serve it).
    const s = registry.get(serverId, mappingId);
    const m = s?.mappings.find((x) => x.id === mappingId);
    return s && m ? { session: s, mapping: m } : null;
  }

  tcpOpened(serverId: string, mappingId: string, clientIp: string, stats: SpliceStats): LiveConn {
    return this.usage.connectionOpened(this.usage.usage(serverId, mappingId), clientIp, stats, 'tcp');
  }

  /** A UDP flow opened: counted like a connection; `stats` holds its payload bytes (aToB = client -> app). */
  udpFlowOpened(serverId: string, mappingId: string, clientIp: string, stats: SpliceStats): LiveConn {
    return this.usage.connectionOpened(this.usage.usage(serverId, mappingId), clientIp, stats, 'udp');
  }

  connectionClosed(c: LiveConn): void {
    this.usage.connectionClosed(c);
  }

  // ---- API views ----

  /** `health_status` and the runtime part of `health_check` of a mapping. */
  healthView(m: { id: string; healthCheck: Record<string, unknown> | null }, online: boolean): { status: HealthStatus; lastCheck: string | null; consecutiveFailures: number; detail: string | null } {
    const h = this.health.get(m.id);
    if (!healthEnabled(m) || !h) return { status: 'unknown', lastCheck: h?.lastCheck ?? null, consecutiveFailures: 0, detail: null };
    return { status: online ? h.status : 'unknown', lastCheck: h.lastCheck, consecutiveFailures: h.consecutiveFailures, detail: h.detail || null };
  }

  usageView(serverId: string, mappingId: string): ReturnType<import('./stats/usage.js').MappingUsage['view']> | null {
    this.usage.syncLive();
    return this.usage.peek(serverId, mappingId)?.view() ?? null;
  }

  /** The server's recent access-log entries across its mappings, newest first. */
  accessLogs(serverId: string, mappingIds: readonly string[], limit = 100): Array<Record<string, unknown>> {
    const all: Array<Record<string, unknown> & { timestamp: string }> = [];
    for (const id of mappingIds) {
      const u = this.usage.peek(serverId, id);
      if (u) for (const e of u.recentLogs(limit)) all.push({ ...e, mapping_id: id });
    }
    all.sort((a, b) => (a.timestamp < b.timestamp ? 1 : a.timestamp > b.timestamp ? -1 : 0));
    return all.slice(0, limit);
  }

  /** `network_configuration.load_balancer` of a server's proxy view. */
  loadBalancerView(serverId: string, online: (serverId: string) => boolean) {
    const sets = this.replicas.setsOfServer(serverId);
    const suffix = this.deps.config.https.listen.port === 443 ? '' : `:${this.deps.config.https.listen.port}`;
    const groups = sets.map((s: ReplicaSet) => ({
      group: s.group,
      url: s.members.some((m) => m.http) ? `https://${s.host}${suffix}` : null,
      tcp_ports: s.members.map((m) => m.externalPort),
      members: s.members.map((m) => {
        const h = this.health.get(m.mappingId);
        const why = this.replicas.ineligible(m);
        return {
          server_id: m.serverId,
          mapping_id: m.mappingId,
          external_port: m.externalPort,
          online: online(m.serverId),
          health_status: online(m.serverId) ? (h?.status ?? 'unknown') : 'unknown',
          receiving_traffic: why === null,
        };
      }),
    }));
    return {
      enabled: groups.length > 0,
      algorithm: 'round_robin',
      health_check_enabled: sets.some((s) => s.members.some((m) => m.healthChecked)),
      groups,
    };
  }
}
