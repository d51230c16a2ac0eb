/**
 * The fast front: the relay's HTTPS connections start here, not in
 * node:http. Each request head is read by a strict parser
 * (request-head.ts); a request to a route without access rules goes to the
 * proxy (proxy.ts onRequest) as light request/response objects
 * (fast-message.ts) whose bytes are written straight to the TLS socket.
 * Everything else — a route with access rules (sign-in pages, cookies,
 * compression), an unknown or replica-group host, an upgrade, a chunked
 * body, HTTP/1.0, a head the parser will not vouch for — is handed to
 * node:http at that request boundary with its bytes untouched, and node's
 * server serves the connection from then on exactly as before. One request
 * at a time per connection: a pipelined next request waits, unparsed, until
 * the response before it has ended, so a hand-over never splits a message.
 *
 * Timeouts as node:http's: a head must arrive whole within
 * https.header_timeout of its first byte (else 408), an idle keep-alive
 * connection closes after KEEPALIVE_SECONDS, and during a request the
 * proxy's idle timeout by traffic class applies (res.setTimeout).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { normalizeAddress } from '../../shared/util/net.js';
import type { HostRouter, Route } from './router.js';
import { parseRequestHead, type RequestHead } from './request-head.js';
import { FastRequest, FastResponse, KEEPALIVE_SECONDS, type FastOwner } from './fast-message.js';
import type { DirectExchange, DirectOwner } from './direct-exchange.js';
import { UpstreamPool, type UpstreamConn } from './upstream-pool.js';

export interface FastFrontDeps {
  router: HostRouter;
  /** The proxy's request handler (HttpProxy.onRequest). */
  onRequest(req: IncomingMessage, res: ServerResponse): void;
  /**
   * The direct path (direct-exchange.ts) for a request, or null when the
   * proxy's general path must take it (the relay drains, the agent is
   * offline, the proxy is off for the server: it answers those).
   */
  direct(owner: DirectOwner, head: RequestHead, route: Route): DirectExchange | null;
  /** The pool the direct path's streams come from (released to it when a connection ends). */
  pool: UpstreamPool;
  /** node:http's connection handler: takes a connection the front hands over. */
  handOver(sock: TLSSocket): void;
  maxHeaderBytes: number;
  headerTimeoutMs: number;
}

/** Unread bytes held while a request is in progress before the socket stops reading. */
const HOLD_BYTES = 64 * 1024;
const KEEPALIVE_MS = KEEPALIVE_SECONDS * 1000;
const REQUEST_TIMEOUT_ANSWER = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';

export class FastFront {
  /** Connections the front serves now (handed-over ones are node's). */
  readonly connections = new Set<FastConnection>();
  /** Requests served here (of them on the direct path), and connections handed to node:http (/metrics, tests). */
  readonly stats = { requests: 0, direct: 0, handedOver: 0 };
  private closing = false;

  constructor(readonly deps: FastFrontDeps) {}

  /** Takes a new TLS connection. */
  accept(sock: TLSSocket): void {
    if (this.closing) {
      sock.destroy();
      return;
    }
    const c = new FastConnection(sock, this);
    this.connections.add(c);
  }

  /** Draining: idle connections close now, busy ones after their response. */
  close(): void {
    this.closing = true;
    for (const c of this.connections) c.drain();
  }

  destroy(): void {
    this.closing = true;
    for (const c of this.connections) c.sock.destroy();
  }

  get draining(): boolean {
    return this.closing;
  }
}

export class FastConnection implements FastOwner, DirectOwner {
  /** Bytes read and not yet consumed (a partial head, a pipelined request, body not yet taken). */
  private buf: Buffer | null = null;
  /** The request in progress: a direct exchange, or a request/response pair for the proxy's general path. */
  private ex: DirectExchange | null = null;
  private req: FastRequest | null = null;
  private res: FastResponse | null = null;
  /** The stream to the app the last direct request used, parked for the next one. */
  private bound: UpstreamConn | null = null;
  /** The socket's timeout now (set only when it changes). */
  private timeoutMs = -1;
  private ip: string | null = null;
  /** Body bytes of the current request still to come. */
  private bodyLeft = 0;
  /** When the first byte of the head being read arrived (performance.now), or -1. */
  private headStart = -1;
  private closeAfter = false;
  private gone = false;
  private feeding = false;

  constructor(
    readonly sock: TLSSocket,
    private readonly front: FastFront,
  ) {
    sock.setNoDelay(true);
    sock.on('data', this.onData);
    sock.on('end', this.onEnd);
    sock.on('timeout', this.onTimeout);
    sock.on('drain', this.onDrain);
    sock.on('error', noop);
    sock.once('close', this.onClose);
    this.setIdleTimeout(front.deps.headerTimeoutMs);
  }

  /** The client's address (as the access log and X-Forwarded-For give it). */
  get clientIp(): string {
    return (this.ip ??= normalizeAddress(this.sock.remoteAddress));
  }

  /** A request is in progress. */
  private get busy(): boolean {
    return this.ex !== null || this.res !== null;
  }

  /** The front is draining. */
  drain(): void {
    if (!this.busy && this.buf === null) this.sock.destroy();
    else this.closeAfter = true;
  }

  setIdleTimeout(ms: number): void {
    if (ms === this.timeoutMs) return;
    this.timeoutMs = ms;
    this.sock.setTimeout(ms);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.busy) {
      this.feedBody();
      if (this.buf !== null && this.buf.length >= HOLD_BYTES) this.sock.pause();
      return;
    }
    this.next();
  };

  /** Reads the next request head from the buffer, if no request is in progress. */
  private next(): void {
    const buf = this.buf;
    if (this.busy || this.gone || buf === null) return;
    const { deps } = this.front;
    if (this.headStart < 0) {
      this.headStart = performance.now();
      this.setIdleTimeout(deps.headerTimeoutMs);
    }
    const head = parseRequestHead(buf, deps.maxHeaderBytes);
    if (head === 'incomplete') {
      if (performance.now() - this.headStart > deps.headerTimeoutMs) this.timedOut();
      return;
    }
    if (head === 'defer') return this.handOver();
    const route = deps.router.lookup(head.headers.host);
    if (route === undefined || route.access !== null) return this.handOver();
    this.headStart = -1;
    this.buf = buf.length > head.length ? buf.subarray(head.length) : null;
    this.bodyLeft = head.contentLength;
    if (head.close) this.closeAfter = true;
    this.front.stats.requests++;
    const ex = deps.direct(this, head, route);
    if (ex !== null) {
      this.front.stats.direct++;
      this.ex = ex;
      ex.start();
      if (this.bodyLeft > 0) this.feedBody();
      return;
    }
    const req = new FastRequest(head, this.sock, this);
    const res = new FastResponse(this.sock, this, head.method === 'HEAD', this.closeAfter || this.front.draining);
    this.req = req;
    this.res = res;
    deps.onRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse);
    if (this.bodyLeft > 0) this.feedBody();
  }

  /** Gives the current request the body bytes it may take now. */
  private feedBody(): void {
    const ex = this.ex;
    const req = this.req;
    const sink = ex ?? req;
    if (sink === null || this.feeding) return;
    this.feeding = true;
    while (this.bodyLeft > 0 && !sink.paused && this.buf !== null && (this.ex ?? this.req) === sink) {
      const buf = this.buf;
      const n = Math.min(buf.length, this.bodyLeft);
      this.buf = n < buf.length ? buf.subarray(n) : null;
      this.bodyLeft -= n;
      const chunk = n < buf.length ? buf.subarray(0, n) : buf;
      if (ex !== null) {
        ex.data(chunk);
        if (this.bodyLeft === 0) ex.end();
      } else if (req !== null) {
        req.emit('data', chunk);
        if (this.bodyLeft === 0) req.emit('end');
      }
    }
    this.feeding = false;
    if (this.sock.isPaused() && (this.buf === null || this.buf.length < HOLD_BYTES) && !sink.paused) this.sock.resume();
  }

  closing(): boolean {
    return this.closeAfter || this.front.draining;
  }

  wantBody(): void {
    process.nextTick(() => this.feedBody());
  }

  responseDone(res: FastResponse): void {
    if (res !== this.res) return;
    this.req = null;
    this.res = null;
    process.nextTick(() => res.close());
    this.requestDone(res.closeAfter);
  }

  directDone(ex: DirectExchange, closeAfter: boolean): void {
    if (ex !== this.ex) return;
    this.ex = null;
    this.requestDone(closeAfter);
  }

  answerInstead(ex: DirectExchange): FastResponse {
    const res = new FastResponse(this.sock, this, ex.isHead, this.closeAfter || this.front.draining);
    if (ex === this.ex) {
      this.ex = null;
      this.res = res;
    }
    return res;
  }

  takeBound(key: string): UpstreamConn | null {
    const conn = this.bound;
    if (conn === null) return null;
    this.bound = null;
    if (UpstreamPool.reusable(conn, key, performance.now())) return conn;
    this.front.deps.pool.unpark(conn);
    return null;
  }

  bind(conn: UpstreamConn): void {
    if (this.bound !== null && this.bound !== conn) this.front.deps.pool.unpark(this.bound);
    this.bound = conn;
  }

  /** The parked stream goes back to the pool (the connection ends or leaves the front). */
  private releaseBound(): void {
    const conn = this.bound;
    this.bound = null;
    if (conn !== null) this.front.deps.pool.unpark(conn);
  }

  /** The response of the request in progress is complete: on to the next one, or close. */
  private requestDone(closeAfter: boolean): void {
    const unreadBody = this.bodyLeft > 0;
    this.bodyLeft = 0;
    // The app answered before the whole body arrived: the rest cannot be told from a next request cheaply; close.
    if (closeAfter || this.closeAfter || unreadBody || this.front.draining) {
      this.finish();
      return;
    }
    this.setIdleTimeout(KEEPALIVE_MS);
    if (this.sock.isPaused()) this.sock.resume();
    if (this.buf !== null) process.nextTick(() => this.next());
  }

  /** Ends the connection after what is queued on it. */
  private finish(): void {
    if (this.gone) return;
    this.detach();
    this.sock.end();
    // A client that never reads its last response must not hold the connection.
    setTimeout(() => this.sock.destroy(), 5_000).unref();
  }

  /** Gives the connection, with the bytes read so far, to node:http. */
  private handOver(): void {
    const buf = this.buf;
    this.buf = null;
    this.detach(true);
    this.front.stats.handedOver++;
    this.setIdleTimeout(0);
    this.sock.pause();
    if (buf !== null) this.sock.unshift(buf);
    this.front.deps.handOver(this.sock);
    this.sock.resume();
  }

  private timedOut(): void {
    const sock = this.sock;
    this.detach();
    sock.end(REQUEST_TIMEOUT_ANSWER);
    setTimeout(() => sock.destroy(), 1_000).unref();
  }

  private readonly onTimeout = (): void => {
    if (this.ex !== null) {
      // The proxy's idle timeout for this request (it answers 504 or cuts the response).
      this.ex.onTimeout();
      return;
    }
    const res = this.res;
    if (res !== null) {
      // The proxy's idle timeout for this request (it answers 504 or cuts the response).
      if (res.listenerCount('timeout') > 0) res.emit('timeout');
      else this.sock.destroy();
      return;
    }
    if (this.buf !== null || this.headStart >= 0) this.timedOut();
    else this.sock.destroy(); // idle keep-alive connection
  };

  private readonly onDrain = (): void => {
    if (this.ex !== null) this.ex.onClientDrain();
    else this.res?.emit('drain');
  };

  private readonly onEnd = (): void => {
    // The client will send nothing more: finish the request in progress (its body is all here or lost), then close.
    if (!this.busy) this.sock.destroy();
    else this.closeAfter = true;
  };

  private readonly onClose = (): void => {
    this.gone = true;
    this.front.connections.delete(this);
    const ex = this.ex;
    const res = this.res;
    this.ex = null;
    this.req = null;
    this.res = null;
    ex?.clientGone();
    res?.close();
    this.releaseBound();
  };

  /** Stops following the socket: it is closing (its errors stay swallowed), or node:http takes it (`handing`). */
  private detach(handing = false): void {
    const sock = this.sock;
    sock.off('data', this.onData);
    sock.off('end', this.onEnd);
    sock.off('timeout', this.onTimeout);
    sock.off('drain', this.onDrain);
    if (handing) sock.off('error', noop);
    sock.off('close', this.onClose);
    this.front.connections.delete(this);
    this.gone = true;
    this.releaseBound();
  }
}

function noop(): void {
  // Errors end in 'close'.
}
