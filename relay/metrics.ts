/**
 * The relay's Prometheus metrics (prom-client), served at GET /metrics on the
 * API listener (docs/observability.md). One registry per process; call sites
 * increment the exported metrics directly, e.g.
 *
 *   metrics.blocked.inc({ reason: 'ip_blocked' });
 *   metrics.rateLimited.inc({ scope: 'per_user' });
 *
 * Labels are bounded: server id, mapping id, status class, direction, reason —
 * never a client address, user name or path.
 */
import type { IncomingMessage } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export const registry = new Registry();

/** Values filled at scrape time by the relay (set with setCollectors). */
export interface LiveCollectors {
  agentsOnline(): number;
  streamsOpen(): number;
  /** Called before every scrape so counters fed from live sockets are current. */
  beforeScrape?(): void;
}

let collectors: LiveCollectors | null = null;
/** The fast front's counters (relay/vhost/fast-front.ts), read at scrape time. */
let frontStats: (() => { requests: number; handedOver: number }) | null = null;

/** The web proxy installs its fast front's counters here (null: none). */
export function setFrontStats(f: (() => { requests: number; handedOver: number }) | null): void {
  frontStats = f;
}

/** The relay installs its live views here once it has them. */
export function setCollectors(c: LiveCollectors | null): void {
  collectors = c;
}

export const metrics = {
  agentsOnline: new Gauge({
    name: 'portico_agents_online',
    help: 'Agents (servers) connected now',
    registers: [registry],
    collect() {
      this.set(collectors?.agentsOnline() ?? 0);
    },
  }),
  streamsOpen: new Gauge({
    name: 'portico_streams_open',
    help: 'Data streams (TCP connections, UDP flows, HTTP exchanges) open through agents now',
    registers: [registry],
    collect() {
      collectors?.beforeScrape?.();
      this.set(collectors?.streamsOpen() ?? 0);
    },
  }),
  /** Requests the HTTPS fast front framed itself, and connections it handed to node:http. */
  fastFrontRequests: new Counter({
    name: 'portico_https_fast_front_requests_total',
    help: 'HTTPS requests framed by the relay\'s fast front (routes without access rules) rather than node:http',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(frontStats?.().requests ?? 0);
    },
  }),
  fastFrontHandovers: new Counter({
    name: 'portico_https_fast_front_handovers_total',
    help: 'HTTPS connections the fast front handed to node:http (access rules, upgrades, chunked bodies, unusual heads)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(frontStats?.().handedOver ?? 0);
    },
  }),
  /** Bytes through public endpoints; direction in = client -> app, out = app -> client. */
  bytes: new Counter({
    name: 'portico_bytes_total',
    help: 'Bytes forwarded per mapping and direction (in: client to app, out: app to client)',
    labelNames: ['server', 'mapping', 'direction'] as const,
    registers: [registry],
  }),
  /** HTTPS requests answered (by the app or by the proxy), by status class 1xx..5xx. */
  requests: new Counter({
    name: 'portico_http_requests_total',
    help: 'HTTPS proxy requests by mapping and status class',
    labelNames: ['server', 'mapping', 'status_class'] as const,
    registers: [registry],
  }),
  requestDuration: new Histogram({
    name: 'portico_http_request_duration_seconds',
    help: 'HTTPS proxy request duration (request start to response end) per mapping',
    labelNames: ['server', 'mapping'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  }),
  /** Raw TCP connections and WebSocket tunnels accepted per mapping. */
  connections: new Counter({
    name: 'portico_connections_total',
    help: 'Raw TCP connections and WebSocket tunnels opened per mapping',
    labelNames: ['server', 'mapping', 'kind'] as const,
    registers: [registry],
  }),
  connectionsOpen: new Gauge({
    name: 'portico_connections_open',
    help: 'Raw TCP connections and WebSocket tunnels open now per mapping',
    labelNames: ['server', 'mapping'] as const,
    registers: [registry],
  }),
  /** 1 healthy, 0 unhealthy, -1 unknown (no result yet, or the agent is offline). */
  health: new Gauge({
    name: 'portico_mapping_health',
    help: 'Health check state per mapping: 1 healthy, 0 unhealthy, -1 unknown',
    labelNames: ['server', 'mapping'] as const,
    registers: [registry],
  }),
  /** Requests or connections refused by an access rule (reason: ip_not_allowed, ip_blocked, unauthenticated, forbidden_user, sessions_exceeded, …). */
  blocked: new Counter({
    name: 'portico_blocked_total',
    help: 'Requests and connections refused by access control, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  }),
  /** Requests refused with 429 (scope: mapping, global, per_user, per_ip). */
  rateLimited: new Counter({
    name: 'portico_rate_limited_total',
    help: 'Requests refused by a rate limit (429), by limit scope',
    labelNames: ['scope'] as const,
    registers: [registry],
  }),
  /** Requests answered 503 / connections reset because no replica of a group is eligible. */
  unhealthyRefused: new Counter({
    name: 'portico_unhealthy_refused_total',
    help: 'Requests and connections refused because every replica of a group is unhealthy or offline',
    labelNames: ['server', 'mapping'] as const,
    registers: [registry],
  }),
  /** Sealed data connections (docs/native-data-path.md): new ones taken for a stream, refused ones (unknown id, wrong proof, not a preamble), idle ones reused for another stream. */
  sealedConnections: new Counter({
    name: 'portico_sealed_connections_total',
    help: 'Sealed data connections on the tunnel port, by result (accepted, refused, reused; unsealed: a stream the agent carried on the mux for want of one)',
    labelNames: ['result'] as const,
    registers: [registry],
  }),
};

/** The text exposition of every metric. */
export function scrape(): Promise<string> {
  return registry.metrics();
}

export const METRICS_CONTENT_TYPE = registry.contentType;

/** Forgets the per-mapping series of a mapping that no longer exists (keeps /metrics bounded). */
export function forgetMapping(server: string, mapping: string): void {
  for (const m of [metrics.connectionsOpen, metrics.health, metrics.unhealthyRefused]) m.remove({ server, mapping });
  for (const direction of ['in', 'out']) metrics.bytes.remove({ server, mapping, direction });
  for (const c of ['1xx', '2xx', '3xx', '4xx', '5xx']) metrics.requests.remove({ server, mapping, status_class: c });
  for (const kind of ['tcp', 'websocket']) metrics.connections.remove({ server, mapping, kind });
  metrics.requestDuration.remove({ server, mapping });
}

// ---- who made a request (set by access control, read by the access log) ----

const users = new WeakMap<IncomingMessage, string>();

/** Access control calls this once it knows the authenticated user of a proxied request. */
export function setRequestUser(req: IncomingMessage, user: string): void {
  users.set(req, user);
}

/** The authenticated user of a request, or null. */
export function requestUser(req: IncomingMessage): string | null {
  return users.get(req) ?? null;
}
