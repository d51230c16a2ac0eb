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
import type { HostRouter } from './router.js';
import { parseRequestHead } from './request-head.js';
import { FastRequest, FastResponse, KEEPALIVE_SECONDS, type FastOwner } from './fast-message.js';

export interface FastFrontDeps {
  router: HostRouter;
  /** The proxy's request handler (HttpProxy.onRequest). */
  onRequest(req: IncomingMessage, res: ServerResponse): void;
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
  /** Requests served here, and connections handed to node:http (for tests and the bench). */
  readonly stats = { requests: 0, handedOver: 0 };
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

export class FastConnection implements FastOwner {
  /** Bytes read and not yet consumed (a partial head, a pipelined request, body not yet taken). */
  private buf: Buffer | null = null;
  private req: FastRequest | null = null;
  private res: FastResponse | null = null;
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
    sock.setTimeout(front.deps.headerTimeoutMs);
  }

  /** The front is draining. */
  drain(): void {
    if (this.req === null && this.buf === null) this.sock.destroy();
    else this.closeAfter = true;
  }

  private readonly onData = (chunk: Buffer): void => {
    this.buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.req !== null) {
      this.feedBody();
      if (this.buf !== null && this.buf.length >= HOLD_BYTES) this.sock.pause();
      return;
    }
    this.next();
  };

  /** Reads the next request head from the buffer, if no request is in progress. */
  private next(): void {
    const buf = this.buf;
    if (this.req !== null || this.gone || buf === null) return;
    const { deps } = this.front;
    if (this.headStart < 0) {
      this.headStart = performance.now();
      this.sock.setTimeout(deps.headerTimeoutMs);
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
    const req = new FastRequest(head, this.sock, this);
    const res = new FastResponse(this.sock, this, head.method === 'HEAD', this.closeAfter || this.front.draining);
    this.req = req;
    this.res = res;
    this.front.stats.requests++;
    deps.onRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse);
    if (this.bodyLeft > 0) this.feedBody();
  }

  /** Gives the current request the body bytes it may take now. */
  private feedBody(): void {
    const req = this.req;
    if (req === null || this.feeding) return;
    this.feeding = true;
    while (this.bodyLeft > 0 && !req.paused && this.buf !== null && this.req === req) {
      const buf = this.buf;
      const n = Math.min(buf.length, this.bodyLeft);
      this.buf = n < buf.length ? buf.subarray(n) : null;
      this.bodyLeft -= n;
      req.emit('data', n < buf.length ? buf.subarray(0, n) : buf);
      if (this.bodyLeft === 0) req.emit('end');
    }
    this.feeding = false;
    if (this.sock.isPaused() && (this.buf === null || this.buf.length < HOLD_BYTES) && !req.paused) this.sock.resume();
  }

  closing(): boolean {
    return this.closeAfter || this.front.draining;
  }

  wantBody(): void {
    process.nextTick(() => this.feedBody());
  }

  responseDone(res: FastResponse): void {
    if (res !== this.res) return;
    const unreadBody = this.bodyLeft > 0;
    this.req = null;
    this.res = null;
    this.bodyLeft = 0;
    process.nextTick(() => res.close());
    // The app answered before the whole body arrived: the rest cannot be told from a next request cheaply; close.
    if (res.closeAfter || this.closeAfter || unreadBody || this.front.draining) {
      this.finish();
      return;
    }
    this.sock.setTimeout(KEEPALIVE_MS);
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
    this.sock.setTimeout(0);
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
    this.res?.emit('drain');
  };

  private readonly onEnd = (): void => {
    // The client will send nothing more: finish the request in progress (its body is all here or lost), then close.
    if (this.req === null) this.sock.destroy();
    else this.closeAfter = true;
  };

  private readonly onClose = (): void => {
    this.gone = true;
    this.front.connections.delete(this);
    const res = this.res;
    this.req = null;
    this.res = null;
    res?.close();
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
  }
}

function noop(): void {
  // Errors end in 'close'.
}
