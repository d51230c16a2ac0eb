/**
 * Usage statistics and access logs per mapping (identity mappings included),
 * counted in memory on the hot paths (plain counters, a HyperLogLog register
 * update, a ring-buffer slot), flushed to the store every `flushMs` and on
 * stop, loaded at start — so they survive relay restarts. Byte counts of
 * long-lived TCP/WebSocket tunnels are read from their splice counters at
 * each flush and scrape, not per chunk.
 *
 * Every proxied HTTPS request also writes one pino line (`msg: "access"`)
 * with the same fields as the API's access log: no headers, secret query
 * values redacted, the token host never named (the mapping id is).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../shared/logging.js';
import type { SpliceStats } from '../../shared/util/splice.js';
import type { AccessLogEntry, MappingStatsRecord, Store } from '../store/store.js';
import { DURATION_BUCKETS, countUnroutedRequest, forgetMapping, metrics, observeDuration, requestUser, statusClass, type MappingSeries } from '../metrics.js';
import { HyperLogLog } from './hll.js';
import { redactPath, truncateUserAgent } from './redact.js';

/** Access-log entries kept per mapping (API `include_access_logs` and the store). */
export const ACCESS_LOG_SIZE = 100;
export const FLUSH_INTERVAL_MS = 10_000;

type Labeled<T> = T extends { labels(...a: never[]): infer C } ? C : never;

/**
 * An access-log entry as the ring keeps it: the timestamp stays a number
 * (epoch ms) until the entry is read, so requests do not format dates.
 */
export type LoggedRequest = Omit<AccessLogEntry, 'timestamp'> & { timestamp: string | number };

/** The statistics of one mapping. */
export class MappingUsage implements MappingSeries {
  totalRequests = 0;
  totalConnections = 0;
  bytesIn = 0;
  bytesOut = 0;
  responseTimeMsSum = 0;
  responseCount = 0;
  lastAccessed = 0;
  openConnections = 0;
  /** HTTPS requests in flight (routed here, response not closed yet). */
  openRequests = 0;
  visitors = new HyperLogLog();
  /** Ring buffer of the last ACCESS_LOG_SIZE entries; `next` is where the next one goes. */
  private log: LoggedRequest[] = [];
  private next = 0;
  dirty = false;
  // The /metrics series (MappingSeries): plain numbers since the relay started, read at scrape time.
  readonly classCounts = [0, 0, 0, 0, 0];
  promBytesIn = 0;
  promBytesOut = 0;
  readonly durationCounts: number[] = new Array<number>(DURATION_BUCKETS.length + 1).fill(0);
  durationSum = 0;
  // The prom-client child for the open-connections gauge (changed per connection, not per request).
  private children: { open: Labeled<typeof metrics.connectionsOpen> } | null = null;

  constructor(
    readonly serverId: string,
    readonly mappingId: string,
  ) {}

  get m() {
    if (!this.children) {
      const l = { server: this.serverId, mapping: this.mappingId };
      this.children = { open: metrics.connectionsOpen.labels(l) };
    }
    return this.children;
  }

  addBytes(inBytes: number, outBytes: number): void {
    if (inBytes > 0) {
      this.bytesIn += inBytes;
      this.promBytesIn += inBytes;
    }
    if (outBytes > 0) {
      this.bytesOut += outBytes;
      this.promBytesOut += outBytes;
    }
    if (inBytes > 0 || outBytes > 0) this.dirty = true;
  }

  pushLog(e: LoggedRequest): void {
    if (this.log.length < ACCESS_LOG_SIZE) this.log.push(e);
    else this.log[this.next] = e;
    this.next = (this.next + 1) % ACCESS_LOG_SIZE;
  }

  /** Access-log entries, newest first. */
  recentLogs(limit = ACCESS_LOG_SIZE): AccessLogEntry[] {
    const n = this.log.length;
    const out: AccessLogEntry[] = [];
    for (let i = 1; i <= Math.min(limit, n); i++) {
      const e = this.log[(this.next - i + n * 2) % n]!;
      // Formatted once, on first read.
      if (typeof e.timestamp === 'number') e.timestamp = new Date(e.timestamp).toISOString();
      out.push(e as AccessLogEntry);
    }
    return out;
  }

  toRecord(now: string): MappingStatsRecord {
    return {
      serverId: this.serverId,
      mappingId: this.mappingId,
      totalRequests: this.totalRequests,
      totalConnections: this.totalConnections,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      responseTimeMsSum: this.responseTimeMsSum,
      responseCount: this.responseCount,
      visitorsSketch: this.visitors.toJSON(),
      lastAccessed: this.lastAccessed ? new Date(this.lastAccessed).toISOString() : null,
      accessLog: this.recentLogs().reverse(),
      updatedAt: now,
    };
  }

  static fromRecord(r: MappingStatsRecord): MappingUsage {
    const u = new MappingUsage(r.serverId, r.mappingId);
    u.totalRequests = r.totalRequests;
    u.totalConnections = r.totalConnections;
    u.bytesIn = r.bytesIn;
    u.bytesOut = r.bytesOut;
    u.responseTimeMsSum = r.responseTimeMsSum;
    u.responseCount = r.responseCount;
    u.lastAccessed = r.lastAccessed ? Date.parse(r.lastAccessed) || 0 : 0;
    u.visitors = HyperLogLog.from(r.visitorsSketch);
    for (const e of r.accessLog.slice(-ACCESS_LOG_SIZE)) u.pushLog(e);
    return u;
  }

  /** The API's `usage_statistics`. */
  view() {
    return {
      total_requests: this.totalRequests,
      unique_visitors: this.visitors.count(),
      last_accessed: this.lastAccessed ? new Date(this.lastAccessed).toISOString() : null,
      avg_response_time_ms: this.responseCount > 0 ? Math.round((this.responseTimeMsSum / this.responseCount) * 10) / 10 : null,
      bytes_in: this.bytesIn,
      bytes_out: this.bytesOut,
      // Raw TCP connections and WebSocket tunnels open now, plus HTTPS requests in flight
      // (an SSE stream or a long download is an open connection to its user).
      open_connections: this.openConnections + this.openRequests,
      open_requests: this.openRequests,
      total_connections: this.totalConnections,
    };
  }
}

/** One proxied HTTPS request in flight (created when it arrives, finished when its response closes). */
export interface RequestObs {
  start: number;
  /** Set once the request is routed; stays null for unknown hosts. */
  usage: MappingUsage | null;
  bytesIn: number;
  bytesOut: number;
  /** Counted in its mapping's openRequests (routed before its response closed). */
  inFlight: boolean;
  /** The response closed (endRequest ran). */
  ended: boolean;
}

/** A request whose response closed, as finishRequest counts it. */
export interface FinishedRequest {
  /** performance.now() when it arrived. */
  start: number;
  /** The status sent, or 499 when the client left first. */
  status: number;
  clientIp: string;
  /** The signed-in user (access control), else null. */
  user: string | null;
  method: string;
  /** The request target as sent (redacted here). */
  url: string | undefined;
  userAgent: string | undefined;
  bytesIn: number;
  bytesOut: number;
}

/** A live TCP connection or WebSocket tunnel whose splice counters are read at flush/scrape time. */
export interface LiveConn {
  usage: MappingUsage;
  stats: SpliceStats;
  seenIn: number;
  seenOut: number;
}

export interface UsageDeps {
  store: Store;
  logger: Logger;
  flushMs?: number;
}

export class UsageStats {
  /** Server id -> mapping id -> statistics (two lookups of stored strings: no key built per request). */
  private readonly byServer = new Map<string, Map<string, MappingUsage>>();
  private readonly live = new Set<LiveConn>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private readonly accessLog: Logger;

  constructor(private readonly deps: UsageDeps) {
    this.accessLog = deps.logger.child({ component: 'access' });
  }

  /** Loads the stored statistics and starts the periodic flush. */
  async start(): Promise<void> {
    for (const r of await this.deps.store.listMappingStats()) this.mappingsOf(r.serverId).set(r.mappingId, MappingUsage.fromRecord(r));
    this.timer = setInterval(() => void this.flush(), this.deps.flushMs ?? FLUSH_INTERVAL_MS);
    this.timer.unref();
  }

  /** Stops the timer and writes what is left (call before the store closes). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
  }

  /** The statistics of a mapping (created empty on first use). */
  usage(serverId: string, mappingId: string): MappingUsage {
    const m = this.mappingsOf(serverId);
    let u = m.get(mappingId);
    if (!u) m.set(mappingId, (u = new MappingUsage(serverId, mappingId)));
    return u;
  }

  /** Every mapping's statistics (the /metrics series). */
  series(): Iterable<MappingUsage> {
    return this.all();
  }

  /** The statistics of a mapping if anything was ever counted. */
  peek(serverId: string, mappingId: string): MappingUsage | undefined {
    return this.byServer.get(serverId)?.get(mappingId);
  }

  /** Drops the statistics of mappings a server no longer has (or of a deleted server: keep = []). */
  retain(serverId: string, keep: Iterable<string>): void {
    const ids = new Set(keep);
    const m = this.byServer.get(serverId);
    if (m === undefined) return;
    for (const id of [...m.keys()]) {
      if (ids.has(id)) continue;
      m.delete(id);
      forgetMapping(serverId, id);
    }
    if (m.size === 0) this.byServer.delete(serverId);
  }

  private mappingsOf(serverId: string): Map<string, MappingUsage> {
    let m = this.byServer.get(serverId);
    if (m === undefined) this.byServer.set(serverId, (m = new Map()));
    return m;
  }

  private *all(): Iterable<MappingUsage> {
    for (const m of this.byServer.values()) yield* m.values();
  }

  // ---- HTTPS requests ----

  /** Call when a request arrives; the access log entry is written when its response closes. */
  beginRequest(req: IncomingMessage, res: ServerResponse): RequestObs {
    const obs: RequestObs = { start: performance.now(), usage: null, bytesIn: 0, bytesOut: 0, inFlight: false, ended: false };
    res.once('close', () => this.endRequest(req, res, obs));
    return obs;
  }

  private endRequest(req: IncomingMessage, res: ServerResponse, obs: RequestObs): void {
    obs.ended = true;
    const u = obs.usage;
    const inFlight = obs.inFlight;
    obs.inFlight = false;
    this.finishRequest(u, inFlight, {
      start: obs.start,
      // A response the client did not wait for is logged as 499 (nginx's "client closed request").
      status: res.writableFinished || res.headersSent ? res.statusCode : 499,
      clientIp: normalizeIp(req.socket.remoteAddress),
      user: requestUser(req),
      method: req.method ?? 'GET',
      url: req.url,
      userAgent: req.headers['user-agent'],
      bytesIn: obs.bytesIn,
      bytesOut: obs.bytesOut,
    });
  }

  /**
   * Counts a request whose response closed: its mapping's statistics (null
   * for a request no route took), /metrics series, access-log entry and
   * pino line. `inFlight`: it was counted in the mapping's openRequests.
   */
  finishRequest(u: MappingUsage | null, inFlight: boolean, r: FinishedRequest): void {
    const ms = Math.round((performance.now() - r.start) * 10) / 10;
    const now = Date.now();
    const entry: LoggedRequest = {
      timestamp: now,
      client_ip: r.clientIp,
      user: r.user,
      method: r.method,
      path: redactPath(r.url),
      status_code: r.status,
      response_time_ms: ms,
      user_agent: truncateUserAgent(r.userAgent),
    };
    if (u) {
      if (inFlight) u.openRequests--;
      u.totalRequests++;
      u.responseTimeMsSum += ms;
      u.responseCount++;
      u.lastAccessed = now;
      u.visitors.add(r.user ? `u:${r.user}` : r.clientIp);
      u.pushLog(entry);
      u.dirty = true;
      u.classCounts[statusClass(r.status)]!++;
      observeDuration(u.durationCounts, ms / 1000);
      u.durationSum += ms / 1000;
      u.addBytes(r.bytesIn, r.bytesOut);
    } else {
      countUnroutedRequest(r.status);
    }
    // The pino line (skipped without building it when the level is above info).
    if (this.accessLog.isLevelEnabled('info')) {
      this.accessLog.info(
        { server: u?.serverId, mapping: u?.mappingId, ...entry, timestamp: new Date(now).toISOString(), bytes_in: r.bytesIn, bytes_out: r.bytesOut },
        'access',
      );
    }
  }

  // ---- raw TCP connections and WebSocket tunnels ----

  /**
   * Counts a new connection (one request too) and follows its byte counters
   * (aToB = client -> app, bToA = app -> client) until connectionClosed.
   */
  connectionOpened(u: MappingUsage, clientIp: string, stats: SpliceStats, kind: 'tcp' | 'websocket' | 'udp'): LiveConn {
    u.totalConnections++;
    u.totalRequests++;
    u.openConnections++;
    u.lastAccessed = Date.now();
    u.visitors.add(clientIp);
    u.dirty = true;
    u.m.open.inc();
    metrics.connections.inc({ server: u.serverId, mapping: u.mappingId, kind });
    const c: LiveConn = { usage: u, stats, seenIn: 0, seenOut: 0 };
    this.live.add(c);
    return c;
  }

  connectionClosed(c: LiveConn): void {
    if (!this.live.delete(c)) return;
    syncConn(c);
    c.usage.openConnections--;
    c.usage.m.open.dec();
  }

  /** Folds the byte counters of live connections into their mappings (flush and scrape call it). */
  syncLive(): void {
    for (const c of this.live) syncConn(c);
  }

  // ---- persistence ----

  /** Writes every mapping that changed since the last flush. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    this.syncLive();
    const now = new Date().toISOString();
    const rows: MappingStatsRecord[] = [];
    for (const u of this.all()) {
      if (!u.dirty) continue;
      u.dirty = false;
      rows.push(u.toRecord(now));
    }
    if (rows.length === 0) return Promise.resolve();
    this.flushing = this.deps.store.saveMappingStats(rows).then(
      () => {
        this.flushing = null;
      },
      (err: Error) => {
        this.flushing = null;
        for (const r of rows) {
          const u = this.peek(r.serverId, r.mappingId);
          if (u) u.dirty = true;
        }
        this.deps.logger.warn({ err: err.message, rows: rows.length }, 'could not save usage statistics; will retry');
      },
    );
    return this.flushing;
  }
}

function syncConn(c: LiveConn): void {
  const dIn = c.stats.aToB - c.seenIn;
  const dOut = c.stats.bToA - c.seenOut;
  c.seenIn = c.stats.aToB;
  c.seenOut = c.stats.bToA;
  c.usage.addBytes(dIn, dOut);
}

function normalizeIp(a: string | undefined): string {
  if (!a) return '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}
