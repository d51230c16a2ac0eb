/**
 * One proxied HTTP request: the client's request (node's HTTP server) on one
 * side, a pooled upstream connection (a mux stream to the app, speaking
 * HTTP/1.1 written and parsed here) on the other. The request head is
 * written in one piece, the body forwarded with backpressure (re-chunked
 * when the client sent it chunked), the response head parsed by
 * ResponseParser and its body written to the client as it arrives. Idle
 * timeouts follow the traffic class; an idempotent request that meets a
 * pooled stream the app just closed is retried once on a fresh one.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import type { RelayConfig } from '../../shared/config/types.js';
import type { RequestObs } from '../stats/usage.js';
import type { HttpAccess } from '../access/policy.js';
import type { AccessGate } from '../access/gate.js';
import { pipeCompressed } from '../access/compress.js';
import type { AgentSession } from '../sessions/agent-session.js';
import type { Route } from './router.js';
import { forwardResponseHeaders } from './headers.js';
import { classifyResponse, idleTimeoutMs, type TrafficClass } from './timeouts.js';
import { proxyErrors, sendError, type ProxyError } from './errors.js';
import type { ResponseHead } from './response-parser.js';
import { UpstreamPool, type UpstreamConn, type UpstreamExchange, type UpstreamTarget } from './upstream-pool.js';

/** What an exchange needs from the proxy. */
export interface ExchangeContext {
  pool: UpstreamPool;
  timeouts: RelayConfig['https']['timeouts'];
  stats: { errors: number; timeouts: number };
  access: AccessGate;
  /** The error page for an upstream failure. */
  upstreamError(err: Error, route: Route, session: AgentSession): ProxyError;
  /** Debug log of failed upstream requests. */
  logFailure(route: Route, e: ProxyError, err: Error): void;
}

/** Methods retried once on a fresh stream when a pooled one was closed under them (no body only). */
export const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export interface ExchangeInit {
  route: Route;
  session: AgentSession;
  clientIp: string;
  /** The request head to send, serialised (headers.ts). */
  head: string;
  /** How the request body travels: none, as is (Content-Length), or re-chunked. */
  body: 'none' | 'length' | 'chunked';
  cls: TrafficClass;
  obs: RequestObs | undefined;
}

export class ProxyExchange implements UpstreamExchange {
  private cls: TrafficClass;
  private conn: UpstreamConn | null = null;
  /** The client side is gone (response finished or connection closed). */
  private settled = false;
  private retried = false;
  /** The whole request body went upstream. */
  private bodySent: boolean;
  private keepAlive = false;
  /** Waiting for the client's 'drain' with the upstream stream paused. */
  private waitingDrain = false;
  /** Body sink when the response is compressed. */
  private compressor: PassThrough | null = null;
  /** The client socket while it is corked for this response (holdClientWrites). */
  private clientHeld: Socket | null = null;
  private readonly key: string;
  private readonly target: UpstreamTarget;

  constructor(
    private readonly ctx: ExchangeContext,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly init: ExchangeInit,
  ) {
    this.cls = init.cls;
    this.bodySent = init.body === 'none';
    this.target = {
      session: init.session,
      mappingId: init.route.mappingId,
      internalPort: init.route.internalPort,
      clientAddress: init.clientIp,
      clientPort: req.socket.remotePort ?? 0,
    };
    this.key = UpstreamPool.keyOf(this.target);
  }

  start(): void {
    const res = this.res;
    res.setTimeout(idleTimeoutMs(this.cls, this.ctx.timeouts));
    res.on('timeout', this.onTimeout);
    // The client went away (or the response was cut): drop the upstream stream, never pool it.
    res.once('close', this.onClientClose);
    if (this.init.body !== 'none') {
      this.req.on('data', this.onRequestData);
      this.req.on('end', this.onRequestEnd);
      // Nothing flows until a stream is there to take it.
      this.req.pause();
    }
    const conn = this.ctx.pool.take(this.key);
    if (conn !== null) this.send(conn);
    else this.ctx.pool.open(this.target, this.key, this.wanted, this.onOpened);
  }

  /** A stream opened for this request is still wanted (the pool keeps it otherwise). */
  private readonly wanted = (): boolean => !this.settled;

  private readonly onOpened = (err: Error | null, conn?: UpstreamConn): void => {
    if (err || !conn) return this.fail(err ?? new Error('no stream'));
    this.send(conn);
  };

  private send(conn: UpstreamConn): void {
    this.conn = conn;
    conn.begin(this, this.req.method === 'HEAD');
    conn.write(this.init.head);
    if (this.init.body !== 'none') this.req.resume();
  }

  // ---- request body ----

  private readonly onRequestData = (chunk: Buffer): void => {
    const obs = this.init.obs;
    if (obs) obs.bytesIn += chunk.length;
    const conn = this.conn;
    if (conn === null || chunk.length === 0) return;
    let ok: boolean;
    if (this.init.body === 'chunked') {
      conn.stream.cork();
      conn.write(`${chunk.length.toString(16)}\r\n`);
      conn.write(chunk);
      ok = conn.write('\r\n');
      conn.stream.uncork();
    } else ok = conn.write(chunk);
    if (!ok) this.req.pause();
  };

  private readonly onRequestEnd = (): void => {
    const conn = this.conn;
    if (conn === null) return;
    if (this.init.body === 'chunked') conn.write('0\r\n\r\n');
    this.bodySent = true;
  };

  onUpstreamDrain(): void {
    if (!this.bodySent && !this.settled) this.req.resume();
  }

  // ---- response ----

  onHead(head: ResponseHead): void {
    if (this.settled) return;
    const res = this.res;
    const next = classifyResponse(this.cls, head.statusCode, head);
    if (next !== this.cls) {
      this.cls = next;
      res.setTimeout(idleTimeoutMs(next, this.ctx.timeouts));
    }
    this.keepAlive = head.keepAlive;
    this.holdClientWrites();
    const out = forwardResponseHeaders(head.rawHeaders);
    const access: HttpAccess | null = this.init.route.access;
    // Access control: security headers, CORS headers and the compression choice (relay/access/gate.ts).
    const encoding = access !== null ? this.ctx.access.response(access, this.req, head.statusCode, out, next === 'streaming') : null;
    try {
      if (head.statusMessage !== '') res.writeHead(head.statusCode, head.statusMessage, out);
      else res.writeHead(head.statusCode, out);
    } catch (err) {
      // A header node refuses to send (the parser is stricter, so this is a safety net). Node may
      // have kept some of the app's headers on the response: the error answer must not carry them.
      for (const name of res.getHeaderNames()) res.removeHeader(name);
      this.conn?.destroy();
      this.conn = null;
      this.fail(Object.assign(new Error((err as Error).message), { code: 'HPE_INVALID_HEADER_TOKEN' }));
      return;
    }
    // Event streams: send the head now, not with the first event.
    if (next === 'streaming') res.flushHeaders();
    if (encoding !== null) {
      const pt = new PassThrough();
      pt.on('drain', this.onBodyDrain);
      this.compressor = pt;
      const obs = this.init.obs;
      pipeCompressed(pt, res, encoding, obs ? (n) => (obs.bytesOut += n) : undefined);
    }
  }

  onBody(chunk: Buffer): void {
    if (this.settled) return;
    this.holdClientWrites();
    const pt = this.compressor;
    if (pt !== null) {
      if (!pt.write(chunk)) this.conn?.stream.pause();
      return;
    }
    const obs = this.init.obs;
    if (obs) obs.bytesOut += chunk.length;
    if (!this.res.write(chunk) && !this.waitingDrain) {
      this.waitingDrain = true;
      this.conn?.stream.pause();
      this.res.once('drain', this.onResDrain);
    }
  }

  /**
   * A response's head and body go to the client in one TLS record and one
   * write() even when the body arrives in two pieces (it straddled two of
   * the tunnel's TLS records, each handed to JavaScript on its own tick;
   * 1 in 4 of the bench's 4 KiB responses did). The socket stays corked
   * until the response completes, or to the end of this loop turn for one
   * that goes on (a download, an event stream): a complete response is
   * never held back.
   */
  private holdClientWrites(): void {
    const sock = this.res.socket;
    if (this.clientHeld !== null || sock === null) return;
    this.clientHeld = sock;
    sock.cork();
    setImmediate(this.releaseClientWrites);
  }

  private readonly releaseClientWrites = (): void => {
    const sock = this.clientHeld;
    if (sock === null) return;
    this.clientHeld = null;
    sock.uncork();
  };

  private readonly onResDrain = (): void => {
    this.waitingDrain = false;
    this.conn?.stream.resume();
  };

  private readonly onBodyDrain = (): void => {
    this.conn?.stream.resume();
  };

  onComplete(): void {
    const conn = this.conn;
    this.conn = null;
    if (conn !== null) {
      // A stream paused for backpressure goes back flowing.
      if (conn.stream.isPaused()) conn.stream.resume();
      this.ctx.pool.release(conn, this.keepAlive && this.bodySent && !this.settled);
    }
    if (this.settled) return;
    // The app answered before the whole request body arrived: let the rest drain away.
    if (!this.bodySent) this.req.resume();
    if (this.compressor !== null) this.compressor.end();
    else this.res.end();
    this.releaseClientWrites();
  }

  onUpstreamError(err: Error, conn: UpstreamConn): void {
    this.conn = null;
    if (this.settled) return;
    if (this.res.headersSent) {
      this.res.destroy();
      return;
    }
    // A pooled stream the app closed just as we reused it: once more on a fresh one.
    const code = (err as NodeJS.ErrnoException).code;
    if (!this.retried && conn.uses > 0 && this.init.body === 'none' && code === 'ECONNRESET' && IDEMPOTENT.has(this.req.method ?? '')) {
      this.retried = true;
      this.ctx.pool.open(this.target, this.key, this.wanted, this.onOpened);
      return;
    }
    this.fail(err);
  }

  // ---- endings ----

  private fail(err: Error): void {
    if (this.settled) return;
    if (this.res.headersSent) {
      this.res.destroy();
      return;
    }
    this.ctx.stats.errors++;
    const e = this.ctx.upstreamError(err, this.init.route, this.init.session);
    this.ctx.logFailure(this.init.route, e, err);
    sendError(this.req, this.res, e);
  }

  private readonly onTimeout = (): void => {
    this.ctx.stats.timeouts++;
    const conn = this.conn;
    this.conn = null;
    conn?.destroy();
    if (this.settled) return;
    // Decided: a stream that opens after this goes back to the pool, a late answer is dropped.
    this.settled = true;
    const res = this.res;
    if (!res.headersSent) {
      const { route } = this.init;
      sendError(this.req, res, proxyErrors.idleTimeout(route.internalPort, route.serverId, Math.round(idleTimeoutMs(this.cls, this.ctx.timeouts) / 1000), this.cls));
    } else res.destroy();
  };

  private readonly onClientClose = (): void => {
    this.settled = true;
    const conn = this.conn;
    if (conn !== null) {
      // The response did not complete: the stream is mid-message, never reuse it.
      this.conn = null;
      conn.destroy();
    }
    this.compressor?.destroy();
  };
}
