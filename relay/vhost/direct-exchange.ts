/**
 * One request on the fast front's direct path (fast-front.ts): a plain
 * request to a route without access rules, whose agent is connected. The
 * request head is written to the app in one string built from the parser's
 * forwarded lines (request-head.ts); the response head from the response
 * parser's pass-through lines (response-parser.ts), or rebuilt by the
 * general rules when the app's head needs it (headers.ts); bodies go
 * straight between the client's TLS socket and the mux stream, with
 * backpressure both ways. The client connection keeps its stream to the
 * app from one request to the next (the pool's `park`), so a keep-alive
 * client costs no pool work per request.
 *
 * Same answers as the general path (proxy.ts -> exchange.ts) for these
 * requests: X-Forwarded-*, hop-by-hop rules, Date and Connection like
 * node's server, idle timeouts by traffic class, one retry of an idempotent
 * bodiless request on a reused stream the app closed, the same error pages
 * (written by the general path's sendError) and the same statistics.
 */
import { STATUS_CODES } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { RelayConfig } from '../../shared/config/types.js';
import { atTurnEnd } from '../../shared/util/turn-end.js';
import type { AgentSession } from '../sessions/agent-session.js';
import type { MappingUsage, UsageStats } from '../stats/usage.js';
import type { Route } from './router.js';
import type { RequestHead } from './request-head.js';
import type { ResponseHead } from './response-parser.js';
import { UpstreamPool, type UpstreamConn, type UpstreamExchange } from './upstream-pool.js';
import { forwardRequestHeaders, forwardResponseHeaders, requestFraming, serializeRequestHead } from './headers.js';
import { classifyRequest, classifyResponse, idleTimeoutMs, type TrafficClass } from './timeouts.js';
import { proxyErrors, sendError, type ProxyError } from './errors.js';
import { bodyless, connectionLines, serializeResponseHead, utcDate, type FastResponse } from './fast-message.js';
import { IDEMPOTENT } from './exchange.js';

/** What the proxy gives every direct exchange. */
export interface DirectContext {
  pool: UpstreamPool;
  timeouts: RelayConfig['https']['timeouts'];
  /** The proxy's counters. */
  stats: { requests: number; errors: number; timeouts: number };
  /** `https.host_header: rewrite`: the app sees Host: localhost:<port>. */
  rewriteHost: boolean;
  usage: UsageStats | null;
  upstreamError(err: Error, route: Route, session: AgentSession): ProxyError;
  logFailure(route: Route, e: ProxyError, err: Error): void;
}

/** What a direct exchange needs from the client connection (fast-front.ts FastConnection). */
export interface DirectOwner {
  readonly sock: TLSSocket;
  /** The client's address, normalised (no ::ffff: prefix). */
  readonly clientIp: string;
  /** The connection closes after this response (the client asked, or the relay drains). */
  closing(): boolean;
  /** The idle timeout of the request in progress (0 = none). */
  setIdleTimeout(ms: number): void;
  /** The request wants body bytes again. */
  wantBody(): void;
  /** The stream this connection used last, if it can carry a request to key now. */
  takeBound(key: string): UpstreamConn | null;
  /** Keeps conn (parked) for the connection's next request. */
  bind(conn: UpstreamConn): void;
  /** The response is complete and queued on the socket. */
  directDone(ex: DirectExchange, closeAfter: boolean): void;
  /** A response object for an answer of the relay's own (an error page); the exchange is over. */
  answerInstead(ex: DirectExchange): FastResponse;
}

/** Where a direct request goes: its route, the agent session and mapping statistics. */
export interface DirectTarget {
  route: Route;
  session: AgentSession;
  usage: MappingUsage | null;
}

export class DirectExchange implements UpstreamExchange {
  /** Body delivery is held (no stream yet, or backpressure from it). */
  paused = true;
  readonly isHead: boolean;
  private cls: TrafficClass;
  private conn: UpstreamConn | null = null;
  private readonly key: string;
  private readonly upstreamHead: string;
  private bodyDone: boolean;
  private retried = false;
  private headSent = false;
  private chunked = false;
  private noBody = false;
  private keepAlive = false;
  private closeAfter = false;
  private corked = false;
  private waitingDrain = false;
  /** Over: answered, failed or the client left (statistics counted). */
  private settled = false;
  private status = 0;
  private bytesIn = 0;
  private bytesOut = 0;
  private readonly began = performance.now();

  constructor(
    private readonly owner: DirectOwner,
    private readonly ctx: DirectContext,
    private readonly head: RequestHead,
    private readonly target: DirectTarget,
    private readonly clientIp: string,
  ) {
    this.isHead = head.method === 'HEAD';
    this.bodyDone = head.contentLength === 0;
    this.cls = classifyRequest(head.url, head.headers);
    const { route, session } = target;
    this.key = `${session.id}/${route.mappingId}/${route.internalPort}`;
    this.upstreamHead = upstreamRequestHead(head, clientIp, ctx.rewriteHost ? `localhost:${route.internalPort}` : null);
  }

  start(): void {
    this.ctx.stats.requests++;
    const u = this.target.usage;
    if (u !== null) u.openRequests++;
    this.owner.setIdleTimeout(idleTimeoutMs(this.cls, this.ctx.timeouts));
    const conn = this.owner.takeBound(this.key) ?? this.ctx.pool.take(this.key);
    if (conn !== null) this.send(conn);
    else this.open();
  }

  private open(): void {
    const { route, session } = this.target;
    const target = { session, mappingId: route.mappingId, internalPort: route.internalPort, clientAddress: this.clientIp, clientPort: this.owner.sock.remotePort ?? 0 };
    this.ctx.pool.open(target, this.key, this.wanted, this.onOpened);
  }

  /** A stream opened for this request is still wanted (the pool keeps it otherwise). */
  private readonly wanted = (): boolean => !this.settled;

  private readonly onOpened = (err: Error | null, conn?: UpstreamConn): void => {
    if (err || !conn) return this.fail(err ?? new Error('no stream'));
    this.send(conn);
  };

  private send(conn: UpstreamConn): void {
    this.conn = conn;
    conn.begin(this, this.isHead);
    conn.write(this.upstreamHead);
    if (!this.bodyDone) {
      this.paused = false;
      this.owner.wantBody();
    }
  }

  // ---- request body (fed by the connection) ----

  data(chunk: Buffer): void {
    this.bytesIn += chunk.length;
    const conn = this.conn;
    if (conn !== null && !conn.write(chunk)) this.paused = true;
  }

  end(): void {
    this.bodyDone = true;
  }

  onUpstreamDrain(): void {
    if (this.paused && !this.bodyDone && !this.settled) {
      this.paused = false;
      this.owner.wantBody();
    }
  }

  // ---- response ----

  onHead(h: ResponseHead): void {
    if (this.settled) return;
    const next = classifyResponse(this.cls, h.statusCode, h);
    if (next !== this.cls) {
      this.cls = next;
      this.owner.setIdleTimeout(idleTimeoutMs(next, this.ctx.timeouts));
    }
    this.keepAlive = h.keepAlive;
    this.closeAfter = this.owner.closing();
    let text: string;
    if (h.lines !== null) {
      // The app's lines as they are, with the relay's Date (when missing), Connection and framing.
      this.noBody = this.isHead || bodyless(h.statusCode);
      this.chunked = !this.noBody && h.contentLength < 0;
      const reason = h.statusMessage !== '' ? h.statusMessage : (STATUS_CODES[h.statusCode] ?? 'unknown');
      text = `HTTP/1.1 ${h.statusCode} ${reason}\r\n${h.lines}${h.hasDate ? '' : `Date: ${utcDate()}\r\n`}${connectionLines(this.closeAfter)}${this.chunked ? 'Transfer-Encoding: chunked\r\n\r\n' : '\r\n'}`;
    } else {
      try {
        const s = serializeResponseHead(h.statusCode, h.statusMessage !== '' ? h.statusMessage : undefined, forwardResponseHeaders(h.rawHeaders), this.closeAfter, this.isHead);
        text = s.text;
        this.chunked = s.chunked;
        this.noBody = s.noBody;
      } catch (err) {
        // A field node's server would refuse to send: the same 502 as the general path.
        this.conn?.destroy();
        this.conn = null;
        this.fail(Object.assign(new Error((err as Error).message), { code: 'HPE_INVALID_HEADER_TOKEN' }));
        return;
      }
    }
    this.status = h.statusCode;
    this.headSent = true;
    this.hold();
    this.owner.sock.write(text, 'latin1');
  }

  onBody(chunk: Buffer): void {
    if (this.settled || this.noBody) return;
    this.bytesOut += chunk.length;
    this.hold();
    const sock = this.owner.sock;
    let ok: boolean;
    if (this.chunked) {
      sock.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      sock.write(chunk);
      ok = sock.write('\r\n', 'latin1');
    } else ok = sock.write(chunk);
    if (!ok && !this.waitingDrain) {
      this.waitingDrain = true;
      this.conn?.stream.pause();
    }
  }

  onComplete(): void {
    const conn = this.conn;
    this.conn = null;
    if (this.settled) {
      if (conn !== null) this.ctx.pool.release(conn, false);
      return;
    }
    if (conn !== null) {
      // A stream paused for backpressure goes back flowing.
      if (conn.stream.isPaused()) conn.stream.resume();
      if (this.keepAlive && this.bodyDone) {
        this.ctx.pool.park(conn);
        this.owner.bind(conn);
      } else this.ctx.pool.release(conn, false);
    }
    if (this.chunked && !this.noBody) this.owner.sock.write('0\r\n\r\n', 'latin1');
    this.uncork();
    this.finish(this.status);
    this.owner.directDone(this, this.closeAfter);
  }

  onUpstreamError(err: Error, conn: UpstreamConn): void {
    this.conn = null;
    if (this.settled) return;
    if (this.headSent) {
      // Cut mid-response: the client must see it cut too.
      this.uncork();
      this.owner.sock.destroy();
      return;
    }
    // A reused stream the app closed just as it was taken: once more on a fresh one.
    const code = (err as NodeJS.ErrnoException).code;
    if (!this.retried && conn.uses > 0 && this.head.contentLength === 0 && code === 'ECONNRESET' && IDEMPOTENT.has(this.head.method)) {
      this.retried = true;
      this.open();
      return;
    }
    this.fail(err);
  }

  /** The client socket can take more. */
  onClientDrain(): void {
    if (!this.waitingDrain) return;
    this.waitingDrain = false;
    this.conn?.stream.resume();
  }

  /** The request's idle timeout fired. */
  onTimeout(): void {
    this.ctx.stats.timeouts++;
    const conn = this.conn;
    this.conn = null;
    conn?.destroy();
    if (this.settled) return;
    if (this.headSent) {
      this.uncork();
      this.owner.sock.destroy();
      return;
    }
    const { route } = this.target;
    this.answer(proxyErrors.idleTimeout(route.internalPort, route.serverId, Math.round(idleTimeoutMs(this.cls, this.ctx.timeouts) / 1000), this.cls));
  }

  /** The client connection closed. */
  clientGone(): void {
    const conn = this.conn;
    this.conn = null;
    // Mid-message: never reuse.
    conn?.destroy();
    this.uncork();
    this.finish(this.headSent ? this.status : 499);
  }

  // ---- endings ----

  private fail(err: Error): void {
    if (this.settled) return;
    this.ctx.stats.errors++;
    const e = this.ctx.upstreamError(err, this.target.route, this.target.session);
    this.ctx.logFailure(this.target.route, e, err);
    this.answer(e);
  }

  /** Answers with the relay's own page (general path), counted with its status. */
  private answer(e: ProxyError): void {
    this.finish(e.status);
    const res = this.owner.answerInstead(this);
    const req = { method: this.head.method, headers: this.head.headers };
    sendError(req as unknown as IncomingMessage, res as unknown as ServerResponse, e);
  }

  /** Counts the request once (statistics, access log). */
  private finish(status: number): void {
    if (this.settled) return;
    this.settled = true;
    const u = this.target.usage;
    const stats = this.ctx.usage;
    if (stats === null) return;
    const h = this.head;
    stats.finishRequest(u, u !== null, {
      start: this.began,
      status,
      clientIp: this.clientIp,
      user: null,
      method: h.method,
      url: h.url,
      userAgent: h.headers['user-agent'],
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
    });
  }

  /**
   * The response's head and body leave in one TLS record and one write()
   * even when the body arrives in two pieces: the socket stays corked until
   * the response completes or the loop turn ends (exchange.ts explains).
   */
  private hold(): void {
    if (this.corked) return;
    this.corked = true;
    this.owner.sock.cork();
    atTurnEnd(this.uncork);
  }

  private readonly uncork = (): void => {
    if (!this.corked) return;
    this.corked = false;
    this.owner.sock.uncork();
  };
}

/** The request head for the app: the client's forwarded lines with the relay's Host, X-Forwarded-* and framing. */
export function upstreamRequestHead(head: RequestHead, clientIp: string, rewriteHost: string | null): string {
  const host = head.headers.host ?? '';
  const framing = requestFraming(head.method, head.headers['content-length'], false);
  if (head.forward === null) {
    // A Connection header names further fields to drop: the general rules.
    return serializeRequestHead(head.method, head.url, forwardRequestHeaders(head.rawHeaders, { clientIp, host, rewriteHost, upgrade: null }), framing);
  }
  const xff = head.headers['x-forwarded-for'];
  return (
    `${head.method} ${head.url} HTTP/1.1\r\nHost: ${rewriteHost ?? host}\r\n${head.forward}` +
    `X-Forwarded-For: ${xff === undefined ? clientIp : `${xff}, ${clientIp}`}\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: ${host}\r\n${framing}\r\n`
  );
}
