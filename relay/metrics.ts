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
import { Counter, Gauge, Registry } from 'prom-client';

export const registry = new Registry();

/** Values filled at scrape time by the relay (set with setCollectors). */
export interface LiveCollectors {
  agentsOnline(): number;
  streamsOpen(): number;
  /** Called before every scrape (by the bytes counter) so counters fed from live sockets are current. */
  beforeScrape?(): void;
  /** Every mapping's HTTP series (relay/stats/usage.ts), read at scrape time. */
  mappingSeries?(): Iterable<MappingSeries>;
}

/** Upper bounds of the request-duration histogram, seconds. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/**
 * A mapping's HTTP series, counted as plain numbers on the request path and
 * turned into Prometheus samples at scrape time: prom-client hashes and
 * validates the label set on every inc() and observe(), even through a
 * labels() child — several µs per proxied request (docs/benchmarks.md,
 * session 10), where these additions cost nanoseconds.
 */
export interface MappingSeries {
  readonly serverId: string;
  readonly mappingId: string;
  /** Requests answered since the relay started, per status class (STATUS_CLASSES). */
  readonly classCounts: number[];
  /** Bytes since the relay started (in: client to app). */
  readonly promBytesIn: number;
  readonly promBytesOut: number;
  /** Requests per DURATION_BUCKETS bucket, not cumulative; the last entry counts those above the last bound. */
  readonly durationCounts: number[];
  readonly durationSum: number;
}

/** The status class index (0 = 1xx … 4 = 5xx) of a status code. */
export function statusClass(status: number): number {
  return Math.min(5, Math.max(1, Math.floor(status / 100))) - 1;
}

/** Counts one request into a series' duration histogram. */
export function observeDuration(counts: number[], seconds: number): void {
  let i = 0;
  while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
  counts[i]!++;
}

/** Requests answered without a route (unknown host, …), per status class. */
const unroutedRequests = [0, 0, 0, 0, 0];

export function countUnroutedRequest(status: number): void {
  unroutedRequests[statusClass(status)]!++;
}

const DURATION_NAME = 'portico_http_request_duration_seconds';
const DURATION_HELP = 'HTTPS proxy request duration (request start to response end) per mapping';

/** The request-duration histogram, built from the mappings' series when scraped. */
const requestDuration = {
  name: DURATION_NAME,
  help: DURATION_HELP,
  type: 'histogram',
  aggregator: 'sum',
  get: async () => {
    const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
    for (const s of collectors?.mappingSeries?.() ?? []) {
      let total = 0;
      for (const n of s.durationCounts) total += n;
      if (total === 0) continue;
      const labels = { server: s.serverId, mapping: s.mappingId };
      let cum = 0;
      for (let i = 0; i < DURATION_BUCKETS.length; i++) {
        cum += s.durationCounts[i]!;
        values.push({ metricName: `${DURATION_NAME}_bucket`, labels: { ...labels, le: DURATION_BUCKETS[i]! }, value: cum });
      }
      values.push({ metricName: `${DURATION_NAME}_bucket`, labels: { ...labels, le: '+Inf' }, value: total });
      values.push({ metricName: `${DURATION_NAME}_sum`, labels, value: s.durationSum });
      values.push({ metricName: `${DURATION_NAME}_count`, labels, value: total });
    }
    return { name: DURATION_NAME, help: DURATION_HELP, type: 'histogram', values, aggregator: 'sum' };
  },
  reset: () => undefined,
};
registry.registerMetric(requestDuration as unknown as Parameters<Registry['registerMetric']>[0]);

let collectors: LiveCollectors | null = null;
/** The fast front's counters (relay/vhost/fast-front.ts), read at scrape time. */
let frontStats: (() => { requests: number; direct: number; handedOver: number }) | null = null;

/** The web proxy installs its fast front's counters here (null: none). */
export function setFrontStats(f: (() => { requests: number; direct: number; handedOver: number }) | null): void {
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
  fastFrontDirect: new Counter({
    name: 'portico_https_fast_front_direct_requests_total',
    help: 'HTTPS requests the fast front wrote straight to a stream to the agent (the direct path; the rest of its requests went through the general proxy path)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(frontStats?.().direct ?? 0);
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
    collect() {
      collectors?.beforeScrape?.();
      this.reset();
      for (const s of collectors?.mappingSeries?.() ?? []) {
        const l = { server: s.serverId, mapping: s.mappingId };
        if (s.promBytesIn > 0) this.inc({ ...l, direction: 'in' }, s.promBytesIn);
        if (s.promBytesOut > 0) this.inc({ ...l, direction: 'out' }, s.promBytesOut);
      }
    },
  }),
  /** HTTPS requests answered (by the app or by the proxy), by status class 1xx..5xx. */
  requests: new Counter({
    name: 'portico_http_requests_total',
    help: 'HTTPS proxy requests by mapping and status class',
    labelNames: ['server', 'mapping', 'status_class'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (let c = 0; c < STATUS_CLASSES.length; c++) {
        if (unroutedRequests[c]! > 0) this.inc({ server: '', mapping: '', status_class: STATUS_CLASSES[c]! }, unroutedRequests[c]!);
      }
      for (const s of collectors?.mappingSeries?.() ?? []) {
        for (let c = 0; c < STATUS_CLASSES.length; c++) {
          if (s.classCounts[c]! > 0) this.inc({ server: s.serverId, mapping: s.mappingId, status_class: STATUS_CLASSES[c]! }, s.classCounts[c]!);
        }
      }
    },
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
  for (const kind of ['tcp', 'websocket']) metrics.connections.remove({ server, mapping, kind });
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
