/**
 * Reads a plain TCP socket into buffers we size ourselves (net's `onread`),
 * instead of Node's fixed 64 KiB read per syscall with a new Buffer for each.
 *
 * A bulk transfer grows the read buffer to 256 KiB, so one read() becomes one
 * burst of mux frames and one TLS write: a quarter of the syscalls, event-loop
 * turns and wake-ups of the peer per byte. Every socket starts reading into
 * one 64 KiB buffer shared by all sockets (Node's own read size; the bytes
 * are copied out), so an idle socket pins no buffer and a short transfer
 * costs no more reads than with Node's reads; a read that fills it moves the
 * socket to its own 256 KiB buffer, taken from a small pool and given back
 * when the socket goes quiet or closes (dispose()).
 *
 * Use: create the reader, pass `reader.options` as the socket's `onread`
 * (net.connect), or adopt an accepted socket with adoptAccepted(); then
 * attach a consumer (splice does). Data read before a consumer is attached
 * is queued.
 */
import net from 'node:net';
import { HEADROOM, offerHeadroom } from './headroom.js';

/** Reads up to this size are copied out of the buffer they landed in (a socket's own buffer is kept). */
export const MIN_READ = 16 * 1024;
/** The buffer every reader without one of its own reads into: Node's own read size. */
export const SHARED_READ = 64 * 1024;
/**
 * Full-size read buffers given back by releaseRead(): a bulk transfer reuses a
 * few instead of allocating 256 KiB per read (which, at ~1 GB/s, kept V8's
 * major GC busy: ~30 % of the agent's CPU in perf), and a short connection
 * that filled the shared buffer borrows one instead of allocating it.
 */
const pool: Buffer[] = [];
const POOL_MAX = 32;

function allocRead(size: number): Buffer {
  if (size === MAX_READ) {
    const b = pool.pop();
    if (b !== undefined) return b;
  }
  return Buffer.allocUnsafeSlow(size + HEADROOM).subarray(HEADROOM);
}

/** Buffers waiting in the pool (tests, diagnostics). */
export function pooledReadBuffers(): number {
  return pool.length;
}

/**
 * Returns a chunk a SocketReader handed over for reuse. Only call it when
 * nothing refers to the chunk any more (e.g. from the write callback of the
 * socket it was written to).
 */
export function releaseRead(chunk: Buffer): void {
  const ab = chunk.buffer;
  if (ab.byteLength === MAX_READ + HEADROOM && chunk.byteOffset === HEADROOM && pool.length < POOL_MAX) {
    pool.push(Buffer.from(ab, HEADROOM, MAX_READ));
  }
}
export const MAX_READ = 256 * 1024;
/** Small reads in a row after which a socket's own buffer goes back to the pool. */
const SHRINK_AFTER = 4;

/**
 * The SHARED_READ buffer all readers without one of their own read into. Safe to
 * share: a read fills it and its callback copies the bytes out before any
 * other socket reads.
 */
const shared = allocRead(SHARED_READ);

function copyOut(buf: Buffer, n: number): Buffer {
  const chunk = Buffer.allocUnsafe(n);
  buf.copy(chunk, 0, 0, n);
  return chunk;
}

/** Called with each chunk read; return false to stop reading until `resume()`. */
export type ChunkConsumer = (chunk: Buffer) => boolean;

export class SocketReader {
  private buf: Buffer = shared;
  private consumer: ChunkConsumer | null = null;
  private queued: Buffer[] | null = null;
  /** Reads in a row that did not need a large buffer (shrinks it back). */
  private smallReads = 0;

  /** The socket's `onread` option. */
  readonly options: net.OnReadOpts = {
    buffer: () => this.buf,
    callback: (n: number): boolean => this.onRead(n),
  };

  /** False while reading into the shared buffer (idle, interactive, short transfers), true during bulk reads. */
  get ownsBuffer(): boolean {
    return this.buf !== shared;
  }

  /** Current read buffer size (tests, diagnostics). */
  get bufferSize(): number {
    return this.buf.length;
  }

  /** The socket closed: its own buffer (never handed out) goes back to the pool. */
  dispose(): void {
    if (this.buf !== shared) releaseRead(this.buf);
    this.buf = shared;
  }

  /** Routes chunks to `fn` (first the ones queued before), until detach(). */
  attach(fn: ChunkConsumer): void {
    this.consumer = fn;
    const q = this.queued;
    this.queued = null;
    if (q !== null) for (const c of q) fn(c);
  }

  private onRead(n: number): boolean {
    const buf = this.buf;
    const size = buf.length;
    let chunk: Buffer;
    if (buf === shared) {
      // Every reader starts on the shared buffer (an idle socket pins nothing):
      // copy out; a read that filled it moves this socket to a pooled buffer of its own.
      chunk = copyOut(buf, n);
      if (n === size) this.buf = allocRead(MAX_READ);
    } else if (n <= MIN_READ) {
      // A trickle: copy out; after a few, give the own buffer back and use the shared one.
      chunk = copyOut(buf, n);
      if (++this.smallReads >= SHRINK_AFTER) {
        releaseRead(buf);
        this.buf = shared;
        this.smallReads = 0;
      }
    } else {
      // Bulk: hand the buffer over (with its headroom) and read into the next one.
      chunk = n === size ? buf : buf.subarray(0, n);
      offerHeadroom(chunk, releaseRead);
      this.smallReads = 0;
      this.buf = allocRead(MAX_READ);
    }
    const fn = this.consumer;
    if (fn === null) {
      (this.queued ??= []).push(chunk);
      return true;
    }
    return fn(chunk);
  }
}

/** Connect options for a socket read through `reader`. */
export function withReader<T extends net.NetConnectOpts>(opts: T, reader: SocketReader): T {
  return { ...opts, onread: reader.options };
}

interface SocketInternals {
  _handle: unknown;
  _server: (net.Server & { _connections: number }) | null;
  server: net.Server | null;
}

/**
 * A socket a net.Server accepted (created with `pauseOnConnect: true`), re-made
 * around the same OS handle so it reads through `reader` — net.Server has no
 * `onread` option. The returned socket takes over the server's connection
 * count; the original object is left inert. Returns null (use the original)
 * if the socket was already read from or closed.
 */
export function adoptAccepted(sock: net.Socket, reader: SocketReader, opts: { allowHalfOpen: boolean }): net.Socket | null {
  const old = sock as unknown as SocketInternals;
  const handle = old._handle;
  if (handle === null || handle === undefined || sock.destroyed || sock.readableFlowing === true || sock.readableLength > 0) return null;
  const fresh = new net.Socket({
    handle,
    onread: reader.options,
    allowHalfOpen: opts.allowHalfOpen,
    pauseOnCreate: true,
    readable: true,
    writable: true,
  } as net.SocketConstructorOpts) as net.Socket & SocketInternals;
  const server = old._server;
  old._handle = null;
  old._server = null;
  old.server = null;
  fresh._server = server;
  fresh.server = server;
  return fresh;
}
