/**
 * An http.Agent whose "connections" are mux streams to an agent: each one is
 * opened with a StreamKind.HTTP header and handed to node's HTTP client once
 * the agent reports it reached the app's port. Keep-alive pools them per
 * (agent session, mapping), so a stream serves many requests, like a
 * keep-alive connection to a local upstream.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { PorticoError, errorCodeFromWire } from '../../shared/errors.js';
import { StreamKind } from '../../proto/index.js';
import type { AgentSession } from '../sessions/agent-session.js';

/** How long the agent has to answer a stream header with its open-result. */
const OPEN_TIMEOUT_MS = 15_000;
/** Idle pooled streams are dropped after this long (below the 5 s keep-alive of node, uvicorn, …). */
const FREE_STREAM_TIMEOUT_MS = 4_000;

/** Options the proxy passes to http.request besides the usual ones. */
export interface UpstreamTarget {
  session: AgentSession;
  mappingId: string;
  internalPort: number;
  clientAddress: string;
  clientPort: number;
}

type StreamSocket = Duplex & {
  setKeepAlive(): StreamSocket;
  setNoDelay(): StreamSocket;
  setTimeout(ms: number, cb?: () => void): StreamSocket;
  ref(): StreamSocket;
  unref(): StreamSocket;
  timeout: number;
};

/** Gives a mux stream the few net.Socket methods node's HTTP client and Agent call. */
function asSocket(stream: Duplex): StreamSocket {
  const s = stream as StreamSocket;
  let timer: NodeJS.Timeout | null = null;
  s.timeout = 0;
  s.setKeepAlive = () => s;
  s.setNoDelay = () => s;
  // Only the Agent sets timeouts (on idle pooled streams); reuse clears them via ref().
  s.setTimeout = (ms: number, cb?: () => void) => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    s.timeout = ms;
    if (cb) s.once('timeout', cb);
    if (ms > 0) {
      timer = setTimeout(() => s.emit('timeout'), ms);
      timer.unref();
    }
    return s;
  };
  s.ref = () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    s.timeout = 0;
    return s;
  };
  s.unref = () => s;
  s.once('close', () => {
    if (timer !== null) clearTimeout(timer);
  });
  // The app closed its side (keep-alive expired): finish ours so the Agent forgets the stream.
  s.once('end', () => {
    if (!s.writableEnded) s.end();
  });
  return s;
}

export class StreamAgent extends http.Agent {
  private draining = false;

  constructor() {
    super({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 512, scheduling: 'lifo', timeout: FREE_STREAM_TIMEOUT_MS });
  }

  override getName(options: http.ClientRequestArgs & { upstream?: UpstreamTarget }): string {
    const u = options.upstream!;
    return `${u.session.id}/${u.mappingId}/${u.internalPort}`;
  }

  // Node's Agent accepts an async createConnection through its callback.
  override createConnection(options: http.ClientRequestArgs & { upstream?: UpstreamTarget }, cb: (err: Error | null, s?: Duplex) => void): undefined {
    const u = options.upstream!;
    let opened;
    try {
      opened = u.session.open(
        { mappingId: u.mappingId, internalPort: u.internalPort, kind: StreamKind.HTTP, clientAddress: u.clientAddress, clientPort: u.clientPort, publicPort: 0 },
        OPEN_TIMEOUT_MS,
      );
    } catch (err) {
      cb(err as Error);
      return undefined;
    }
    const { stream } = opened;
    stream.on('error', () => undefined); // reported through the request
    opened.opened.then(
      (r) => {
        if (!r.ok) {
          stream.destroy();
          cb(new PorticoError(errorCodeFromWire(r.code ?? 0), r.message || 'the agent could not open the port'));
          return;
        }
        // readFrame paused the stream after the open-result; the HTTP client only adds 'data' listeners.
        stream.resume();
        cb(null, asSocket(stream));
      },
      (err: Error) => {
        stream.destroy();
        cb(err);
      },
    );
    return undefined;
  }

  // Node returns whether it kept the socket (typed void in @types/node); false = the Agent closes it.
  override keepSocketAlive(socket: Duplex): void {
    if (this.draining) return false as unknown as void;
    return super.keepSocketAlive(socket as never);
  }

  /** Closes idle pooled streams and stops pooling (relay shutdown). */
  drain(): void {
    this.draining = true;
    for (const list of Object.values(this.freeSockets)) for (const s of list ?? []) s.destroy();
  }

  /** Streams open (busy and idle). */
  get streams(): number {
    let n = 0;
    for (const list of Object.values(this.sockets)) n += list?.length ?? 0;
    for (const list of Object.values(this.freeSockets)) n += list?.length ?? 0;
    return n;
  }
}
