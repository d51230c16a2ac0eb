/**
 * The request and response objects of the fast front (fast-front.ts): the
 * few members of node's IncomingMessage and ServerResponse that the proxy
 * path uses for a route without access rules (proxy.ts onRequest ->
 * exchange.ts, errors.ts sendError, stats/usage.ts), on plain event
 * emitters over the client's TLS socket. No stream machinery per request:
 * that, and node:http's parser glue, were most of the relay's CPU per
 * proxied request (docs/benchmarks.md, "Session 10").
 *
 * Members used, and nothing else is provided:
 *   request:  method, url, headers, rawHeaders, socket,
 *             'data'/'end' (the body, fed by the front), pause(), resume()
 *   response: statusCode, headersSent, writableEnded, writableFinished,
 *             socket, writeHead(), write(), end(), flushHeaders(),
 *             setTimeout() + 'timeout', 'drain', 'close', destroy(),
 *             getHeaderNames(), removeHeader()
 * The response is written as HTTP/1.1: Date and Connection added like node
 * does, chunked framing when the head carries no Content-Length.
 */
import { EventEmitter } from 'node:events';
import { STATUS_CODES } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { RequestHead } from './request-head.js';
import { isFieldValue, isToken } from './http-chars.js';

/** What a message tells the connection that owns it. */
export interface FastOwner {
  /** The request wants body bytes (resume()). */
  wantBody(): void;
  /** The response ended (its last bytes are queued on the socket). */
  responseDone(res: FastResponse): void;
  /** The connection closes after this response (the client asked, or the relay is draining). */
  closing(): boolean;
}

export class FastRequest extends EventEmitter {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly rawHeaders: string[];
  /** Body delivery is held (the proxy has no stream to forward it to yet, or backpressure). */
  paused = false;

  constructor(
    head: RequestHead,
    readonly socket: TLSSocket,
    private readonly owner: FastOwner,
  ) {
    super();
    this.method = head.method;
    this.url = head.url;
    this.headers = head.headers;
    this.rawHeaders = head.rawHeaders;
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    if (this.paused) {
      this.paused = false;
      this.owner.wantBody();
    }
    return this;
  }
}

/** Status codes whose responses never carry a body. */
export function bodyless(status: number): boolean {
  return status === 204 || status === 304 || (status >= 100 && status < 200);
}

export class FastResponse extends EventEmitter {
  statusCode = 200;
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  /** The head, waiting for the first body bytes (so both leave in one write). */
  private head: string | null = null;
  private chunked = false;
  private noBody: boolean;
  private closed = false;

  constructor(
    readonly socket: TLSSocket,
    private readonly owner: FastOwner,
    isHead: boolean,
    /** Connection: close goes out with the head, and the connection closes after the response (also set when the owner is closing by the time the head is written). */
    public closeAfter: boolean,
  ) {
    super();
    this.noBody = isHead;
  }

  /** writeHead(status[, reason][, headers]) with headers as a flat [name, value, …] list or an object. */
  writeHead(status: number, reason?: string | string[] | Record<string, string | number>, headers?: string[] | Record<string, string | number>): this {
    if (this.headersSent) throw Object.assign(new Error('Cannot write headers after they are sent to the client'), { code: 'ERR_HTTP_HEADERS_SENT' });
    let message: string | undefined;
    if (typeof reason === 'string') message = reason;
    else if (reason !== undefined) headers = reason;
    if (this.owner.closing()) this.closeAfter = true;
    const head = serializeResponseHead(status, message, headers, this.closeAfter, this.noBody);
    this.chunked = head.chunked;
    this.noBody = head.noBody;
    this.statusCode = status;
    this.head = head.text;
    this.headersSent = true;
    return this;
  }

  /** Sends the head now (an event stream's, before its first event). */
  flushHeaders(): void {
    if (this.head === null) return;
    this.socket.write(this.head, 'latin1');
    this.head = null;
  }

  write(chunk: Buffer | string): boolean {
    if (this.writableEnded || this.socket.destroyed) return false;
    if (!this.headersSent) this.writeHead(this.statusCode);
    const sock = this.socket;
    const len = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    if (this.noBody || len === 0) {
      this.flushHeaders();
      return !sock.writableNeedDrain;
    }
    let prefix = this.head ?? '';
    this.head = null;
    if (this.chunked) prefix += `${len.toString(16)}\r\n`;
    if (prefix !== '') sock.write(prefix, 'latin1');
    const ok = sock.write(chunk);
    return this.chunked ? sock.write('\r\n', 'latin1') : ok;
  }

  end(chunk?: Buffer | string): this {
    if (this.writableEnded) return this;
    if (chunk !== undefined && chunk.length > 0) this.write(chunk);
    else if (!this.headersSent) this.writeHead(this.statusCode);
    this.writableEnded = true;
    if (!this.socket.destroyed) {
      const tail = `${this.head ?? ''}${this.chunked ? '0\r\n\r\n' : ''}`;
      this.head = null;
      if (tail !== '') this.socket.write(tail, 'latin1');
      this.writableFinished = true;
    }
    this.owner.responseDone(this);
    return this;
  }

  setTimeout(ms: number): this {
    this.socket.setTimeout(ms);
    return this;
  }

  destroy(): this {
    this.socket.destroy();
    return this;
  }

  /** 'close', once: the response ended or the connection went away first. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close');
  }

  getHeaderNames(): string[] {
    return [];
  }

  removeHeader(_name: string): void {
    // Nothing is stored before writeHead succeeds.
  }
}

/** Seconds a keep-alive connection may sit idle (told to clients in Keep-Alive). */
export const KEEPALIVE_SECONDS = 30;

/** The Connection line(s) of an answer: the connection closes after it, or stays open. */
export function connectionLines(closeAfter: boolean): string {
  return closeAfter ? 'Connection: close\r\n' : KEEP_ALIVE_LINES;
}
const KEEP_ALIVE_LINES = `Connection: keep-alive\r\nKeep-Alive: timeout=${KEEPALIVE_SECONDS}\r\n`;

export interface SerializedHead {
  /** The head, blank line included. */
  text: string;
  /** The body goes chunked (the head had no Content-Length). */
  chunked: boolean;
  /** No body follows (HEAD, 1xx, 204, 304). */
  noBody: boolean;
}

/**
 * An HTTP/1.1 response head as node's ServerResponse would write it: names
 * and values checked (a TypeError with node's codes otherwise), Date added
 * when missing, Connection/Keep-Alive and Transfer-Encoding stated by the
 * relay (the given ones are dropped), chunked framing without a
 * Content-Length. `message` defaults to the status code's reason phrase.
 */
export function serializeResponseHead(status: number, message: string | undefined, headers: string[] | Record<string, string | number> | undefined, closeAfter: boolean, noBody: boolean): SerializedHead {
  const reason = message ?? STATUS_CODES[status] ?? 'unknown';
  if (!isFieldValue(reason)) throw invalidChar('status message');
  let s = `HTTP/1.1 ${status} ${reason}\r\n`;
  let hasLength = false;
  let hasDate = false;
  const add = (name: string, value: string | number): void => {
    const v = String(value);
    if (!isToken(name)) throw Object.assign(new TypeError(`Header name must be a valid HTTP token ["${name}"]`), { code: 'ERR_INVALID_HTTP_TOKEN' });
    if (!isFieldValue(v)) throw invalidChar(name);
    const lower = name.toLowerCase();
    if (lower === 'content-length') hasLength = true;
    else if (lower === 'date') hasDate = true;
    else if (lower === 'transfer-encoding' || lower === 'connection' || lower === 'keep-alive') return; // ours below
    s += `${name}: ${v}\r\n`;
  };
  if (Array.isArray(headers)) for (let i = 0; i + 1 < headers.length; i += 2) add(headers[i]!, headers[i + 1]!);
  else if (headers !== undefined) for (const [k, v] of Object.entries(headers)) add(k, v);
  if (!hasDate) s += `Date: ${utcDate()}\r\n`;
  s += connectionLines(closeAfter);
  if (bodyless(status)) noBody = true;
  const chunked = !noBody && !hasLength;
  if (chunked) s += 'Transfer-Encoding: chunked\r\n';
  return { text: `${s}\r\n`, chunked, noBody };
}


function invalidChar(name: string): TypeError {
  return Object.assign(new TypeError(`Invalid character in header content ["${name}"]`), { code: 'ERR_INVALID_CHAR' });
}

let dateCache = '';
let dateSecond = -1;

/** The Date header's value, rebuilt at most once a second. */
export function utcDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateCache = new Date(now).toUTCString();
  }
  return dateCache;
}
