/**
 * Keep-alive pool of upstream connections: mux streams of kind HTTP to an
 * agent, each carrying one HTTP/1.1 request after another to the app, like a
 * keep-alive connection to a local upstream. Pooled per (agent session,
 * mapping, port), LIFO; idle streams are dropped after 4 s (below the 5 s
 * keep-alive of node, uvicorn, …) by one coarse sweep timer, not a timer per
 * stream — idle streams in the lists and those a client connection keeps
 * parked for its next request (the fast front's direct path) alike. Each
 * connection owns its response parser and fixed listeners; the request it
 * serves now (its `exchange`) gets the events.
 */
import { PorticoError, errorCodeFromWire } from '../../shared/errors.js';
import type { MuxStream } from '../../shared/mux/index.js';
import { StreamKind } from '../../proto/index.js';
import type { AgentSession } from '../sessions/agent-session.js';
import { ResponseParseError, ResponseParser, type ResponseHead, type ResponseSink } from './response-parser.js';

/** How long the agent has to answer a stream header with its open-result. */
export const OPEN_TIMEOUT_MS = 15_000;
/** Idle pooled streams are dropped after this long (and a parked one is not reused after it). */
export const IDLE_MS = 4_000;
const SWEEP_MS = 1_000;
/** Idle streams kept per key; more are closed when released. */
const MAX_IDLE_PER_KEY = 512;
/** Largest response head accepted from an app. */
export const MAX_RESPONSE_HEADER_BYTES = 64 * 1024;

/** Where a request goes. */
export interface UpstreamTarget {
  session: AgentSession;
  mappingId: string;
  internalPort: number;
  clientAddress: string;
  clientPort: number;
}

/** What a connection reports to the request it serves. */
export interface UpstreamExchange extends ResponseSink {
  /** The stream failed or ended before the response was complete. */
  onUpstreamError(err: Error, conn: UpstreamConn): void;
  /** The stream can take more request body. */
  onUpstreamDrain(): void;
}

export class UpstreamConn {
  readonly parser: ResponseParser;
  /** The request being served, null while idle in the pool. */
  exchange: UpstreamExchange | null = null;
  /** Requests served before the current one (0 = fresh stream). */
  uses = 0;
  idleSince = 0;
  /** The app sent bytes past the end of a response, or the stream half-closed: never reuse. */
  broken = false;
  /** Idle, kept by a client connection for its next request (UpstreamPool.park). */
  parked = false;
  private closed = false;

  constructor(
    readonly stream: MuxStream,
    readonly key: string,
    private readonly pool: UpstreamPool,
  ) {
    this.parser = new ResponseParser(this.sink, MAX_RESPONSE_HEADER_BYTES);
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('close', this.onClose);
    stream.on('drain', this.onDrain);
    stream.on('error', () => undefined); // 'close' follows
  }

  /** Parser events go to the current exchange. */
  private readonly sink: ResponseSink = {
    onHead: (head: ResponseHead) => this.exchange?.onHead(head),
    onBody: (chunk: Buffer) => this.exchange?.onBody(chunk),
    onComplete: () => this.exchange?.onComplete(),
  };

  get destroyed(): boolean {
    return this.closed || this.stream.destroyed;
  }

  /** Starts a request: the parser expects its response. */
  begin(exchange: UpstreamExchange, head: boolean): void {
    this.exchange = exchange;
    this.parked = false;
    this.parser.reset(head);
  }

  /** Writes request bytes (latin1 for strings, as HTTP heads are). */
  write(data: string | Buffer): boolean {
    return typeof data === 'string' ? this.stream.write(data, 'latin1') : this.stream.write(data);
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.exchange = null;
    this.pool.forget(this);
    this.stream.destroy();
  }

  private readonly onData = (chunk: Buffer): void => {
    const ex = this.exchange;
    if (ex === null) {
      // Bytes nobody asked for (idle stream): the app is not speaking HTTP/1.1 request-response.
      this.destroy();
      return;
    }
    let used: number;
    try {
      used = this.parser.execute(chunk);
    } catch (err) {
      this.exchange = null;
      this.broken = true;
      ex.onUpstreamError(err as Error, this);
      this.destroy();
      return;
    }
    if (used < chunk.length) {
      // Bytes past the end of the response: nothing asked for them.
      this.broken = true;
      if (this.exchange === null) this.destroy();
    }
  };

  private readonly onEnd = (): void => {
    this.broken = true;
    const ex = this.exchange;
    if (ex === null) {
      this.destroy();
      return;
    }
    try {
      this.parser.finish(); // completes a close-delimited body
    } catch (err) {
      this.exchange = null;
      ex.onUpstreamError(err as Error, this);
      this.destroy();
    }
  };

  private readonly onClose = (): void => {
    this.closed = true;
    this.pool.forget(this);
    const ex = this.exchange;
    this.exchange = null;
    if (ex !== null && !this.parser.done) ex.onUpstreamError(new ResponseParseError('ECONNRESET', 'socket hang up'), this);
  };

  private readonly onDrain = (): void => {
    this.exchange?.onUpstreamDrain();
  };
}

export class UpstreamPool {
  private readonly idle = new Map<string, UpstreamConn[]>();
  private readonly busy = new Set<UpstreamConn>();
  private draining = false;
  private sweeper: NodeJS.Timeout | null = null;

  static keyOf(t: UpstreamTarget): string {
    return `${t.session.id}/${t.mappingId}/${t.internalPort}`;
  }

  /** The most recently used idle connection for key, or null. */
  take(key: string): UpstreamConn | null {
    const list = this.idle.get(key);
    if (list === undefined) return null;
    for (;;) {
      const c = list.pop();
      if (c === undefined) return null;
      if (c.destroyed) continue;
      this.busy.add(c);
      return c;
    }
  }

  /**
   * Opens a fresh stream to the target's app; cb gets it once the agent
   * reached the port — unless `wanted()` says no by then (the request's
   * client left, or it timed out): a fresh, unused stream then goes to the
   * idle list for the next request, and a failure is dropped.
   */
  open(t: UpstreamTarget, key: string, wanted: () => boolean, cb: (err: Error | null, conn?: UpstreamConn) => void): void {
    let opened;
    try {
      opened = t.session.open(
        { mappingId: t.mappingId, internalPort: t.internalPort, kind: StreamKind.HTTP, clientAddress: t.clientAddress, clientPort: t.clientPort, publicPort: 0 },
        OPEN_TIMEOUT_MS,
      );
    } catch (err) {
      cb(err as Error);
      return;
    }
    const { stream } = opened;
    stream.on('error', () => undefined); // reported through the request
    opened.opened.then(
      (r) => {
        if (!r.ok) {
          stream.destroy();
          if (wanted()) cb(new PorticoError(errorCodeFromWire(r.code ?? 0), r.message || 'the agent could not open the port'));
          return;
        }
        const conn = new UpstreamConn(stream, key, this);
        this.busy.add(conn);
        // readFrame paused the stream after the open-result; the listeners are attached, let bytes flow.
        stream.resume();
        if (wanted()) cb(null, conn);
        else this.release(conn, true);
      },
      (err: Error) => {
        stream.destroy();
        if (wanted()) cb(err);
      },
    );
  }

  /** A request is done with conn: back to the pool when it can carry another one, else closed. */
  release(conn: UpstreamConn, reusable: boolean): void {
    conn.exchange = null;
    this.busy.delete(conn);
    if (!reusable || conn.broken || conn.destroyed || this.draining || !conn.stream.writable) {
      conn.destroy();
      return;
    }
    conn.uses++;
    conn.idleSince = performance.now();
    this.toIdle(conn);
  }

  /** A parked conn goes to the idle lists (its idle time runs on), or closes when it cannot be reused. */
  unpark(conn: UpstreamConn): void {
    this.busy.delete(conn);
    conn.parked = false;
    if (conn.exchange !== null || conn.broken || conn.destroyed || this.draining || !conn.stream.writable) {
      conn.destroy();
      return;
    }
    this.toIdle(conn);
  }

  private toIdle(conn: UpstreamConn): void {
    let list = this.idle.get(conn.key);
    if (list === undefined) this.idle.set(conn.key, (list = []));
    if (list.length >= MAX_IDLE_PER_KEY) {
      conn.destroy();
      return;
    }
    list.push(conn);
    this.startSweep();
  }

  private startSweep(): void {
    if (this.sweeper !== null || this.draining) return;
    this.sweeper = setInterval(this.sweep, SWEEP_MS);
    this.sweeper.unref();
  }

  /**
   * A request is done with conn and the caller keeps it for its next one (a
   * client connection's own stream, fast-front.ts): idle, but in no idle
   * list. Release it when done with it; until then shutdown still closes it.
   */
  park(conn: UpstreamConn): void {
    conn.exchange = null;
    conn.uses++;
    conn.idleSince = performance.now();
    conn.parked = true;
    // Parked streams idle past IDLE_MS are closed by the sweep, like the idle lists' ones.
    this.startSweep();
  }

  /** True when a parked conn can carry another request now. */
  static reusable(conn: UpstreamConn, key: string, now: number): boolean {
    return conn.key === key && conn.exchange === null && !conn.broken && !conn.destroyed && now - conn.idleSince < IDLE_MS && conn.stream.writable;
  }

  /** @internal A connection closed: drop it from the idle lists. */
  forget(conn: UpstreamConn): void {
    this.busy.delete(conn);
    const list = this.idle.get(conn.key);
    if (list === undefined) return;
    const i = list.indexOf(conn);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.idle.delete(conn.key);
  }

  /** Closes idle streams and stops pooling (relay shutdown); requests in flight go on. */
  drain(): void {
    this.draining = true;
    this.closeIdle(() => true);
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  /** Closes every stream (end of the shutdown grace period). */
  destroy(): void {
    this.drain();
    for (const c of [...this.busy]) c.destroy();
  }

  /** Streams open (busy and idle). */
  get streams(): number {
    let n = this.busy.size;
    for (const list of this.idle.values()) n += list.length;
    return n;
  }

  private readonly sweep = (): void => {
    const limit = performance.now() - IDLE_MS;
    this.closeIdle((c) => c.idleSince < limit);
    let parked = 0;
    for (const c of [...this.busy]) {
      if (!c.parked) continue;
      if (c.idleSince < limit) c.destroy();
      else parked++;
    }
    if (this.idle.size === 0 && parked === 0 && this.sweeper !== null) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  };

  private closeIdle(which: (c: UpstreamConn) => boolean): void {
    for (const [key, list] of [...this.idle]) {
      // Oldest first: the list is LIFO, so the stale ones are at the front.
      const stale = list.filter(which);
      for (const c of stale) c.destroy();
      if (list.length === 0) this.idle.delete(key);
    }
  }
}
