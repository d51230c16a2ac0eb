import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { PorticoError } from '../errors.js';
import {
  DEFAULT_KEEPALIVE_INTERVAL,
  DEFAULT_KEEPALIVE_TIMEOUT,
  DEFAULT_MAX_STREAM_WINDOW,
  DEFAULT_MAX_STREAMS,
  DEFAULT_PING_TIMEOUT,
  Flag,
  FrameType,
  GoAwayCode,
  HEADER_LENGTH,
  INITIAL_STREAM_WINDOW,
  MAX_DATA_FRAME,
  MAX_STREAM_ID,
  MAX_WINDOW,
  SMALL_PAYLOAD,
} from './constants.js';
import { FrameDecoder } from './decoder.js';
import { encodeHeader, type FrameHeader } from './frame.js';
import { MuxStream } from './stream.js';
import { claimHeadroom, type ReleaseFn } from '../util/headroom.js';
import { atTurnEnd } from '../util/turn-end.js';

export interface SessionOptions {
  /** Client opens odd stream ids, server even. */
  isClient: boolean;
  /** Receive window per stream, default 4 MiB; the extra over 256 KiB is granted with SYN/ACK. */
  maxStreamWindow?: number;
  /** ms without receiving anything before we send a ping; default 10 000; 0 disables keepalive. */
  keepaliveInterval?: number;
  /** ms without receiving anything before the session dies with TIMEOUT; default 30 000. */
  keepaliveTimeout?: number;
  /** Concurrently open streams; an inbound SYN beyond it is reset. Default 4096. */
  maxStreams?: number;
  /**
   * Bytes of data frames the socket may hold before streams wait for 'drain'
   * (default 512 KiB). A TLS socket's own high-water mark is 16 KiB, less than
   * one data frame: honouring it would send one frame per drain cycle.
   */
  sendBudget?: number;
  /** Called for each inbound stream (also emitted as 'stream'). */
  onStream?: (s: MuxStream) => void;
  /** First id this side opens (testing id exhaustion); must have this side's parity. */
  firstStreamId?: number;
}

interface PendingPing {
  start: number;
  resolve: (rtt: number) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** Size of the slabs frame headers (and small payloads) are carved from. */
const SLAB_SIZE = 64 * 1024;
/** How long a failing session waits for its GoAway to flush before destroying the socket. */
const GOAWAY_GRACE_MS = 1000;
/** Default sendBudget. */
const DEFAULT_SEND_BUDGET = 512 * 1024;
/**
 * Control frames (pongs, resets, window updates) queued beyond the data a
 * session may hold unsent (sendBudget + one data frame). Data waits for
 * 'drain', control frames do not; only a peer that keeps asking for replies
 * (pings, SYNs past the limit) while it reads nothing gets here, and it is
 * disconnected instead of growing our memory without bound.
 */
export const CONTROL_BACKLOG_LIMIT = 256 * 1024;

function noop(): void {}

/**
 * A yamux session over any byte pipe (TLS socket, WebSocket stream, net socket).
 * Events: 'stream' (MuxStream), 'goaway' (code), 'close' (err?: Error).
 */
export class Session extends EventEmitter {
  private readonly socket: Duplex;
  private readonly isClient: boolean;
  private readonly maxStreamWindow: number;
  private readonly extraCredit: number;
  private readonly keepaliveInterval: number;
  private readonly keepaliveTimeout: number;
  private readonly maxStreams: number;
  private readonly onStream: ((s: MuxStream) => void) | undefined;
  /** @internal Consumed bytes owed to the peer before a window update is worth sending. */
  readonly _creditThreshold: number;

  private readonly streams = new Map<number, MuxStream>();
  private nextStreamId: number;
  /** Highest stream id the peer opened: frames for lower unknown ids are stale, not errors. */
  private maxInboundId = 0;
  private readonly decoder: FrameDecoder;
  /** Target of the data frame being received (null: discard). */
  private dataTarget: MuxStream | null = null;

  /** Streams whose SYN/ACK is not sent yet, in open order (SYNs go out in id order). */
  private pendingOpen: MuxStream[] = [];
  private pendingOpenHead = 0;
  private openFlushScheduled = false;

  private slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
  private slabOff = 0;
  private corked = false;
  /** @internal The socket holds sendBudget bytes or more; data waits for 'drain'. */
  _writeBlocked = false;
  private readonly sendBudget: number;
  /** Unsent bytes beyond which the peer is taken for one that does not read (see CONTROL_BACKLOG_LIMIT). */
  private readonly outputLimit: number;
  private overflowing = false;
  private drainWaiters: MuxStream[] = [];

  private nextPingId = 1;
  private readonly pings = new Map<number, PendingPing>();
  private lastRecv = Date.now();
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private graceTimer: NodeJS.Timeout | null = null;

  private localGoAway = false;
  private remoteGoAway = false;
  /** close() or destroy() started: no new streams. */
  private closing = false;
  /** @internal The socket is finished with: no more frames are written. */
  _isDead = false;
  private deadError: Error | undefined;
  private closeEmitted = false;
  private closeWaiters: Array<() => void> = [];
  private drainedWaiters: Array<() => void> = [];

  private readonly onSocketData = (chunk: Buffer): void => {
    this.lastRecv = Date.now();
    try {
      this.decoder.write(chunk);
    } catch (err) {
      this.fail(err);
    }
  };
  private readonly onSocketDrain = (): void => this.drain();
  private readonly onSocketEnd = (): void => {
    this.shutdown(this.streams.size > 0 ? connectionLost('peer ended the connection') : undefined, true);
  };
  private readonly onSocketError = (err: Error): void => this.shutdown(err, false);
  private readonly onSocketClose = (): void => {
    this.shutdown(this.streams.size > 0 ? connectionLost('connection closed') : undefined, false);
    this.emitClose();
  };
  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };
  private readonly flushOpens = (): void => {
    this.openFlushScheduled = false;
    const q = this.pendingOpen;
    for (let i = this.pendingOpenHead; i < q.length; i++) {
      const st = q[i]!;
      if (st._openFlag !== 0 && !st._removed) this.sendOpen(st);
    }
    q.length = 0;
    this.pendingOpenHead = 0;
  };
  private readonly onKeepalive = (): void => {
    this.keepaliveTimer = null;
    if (this.closing) return;
    const idle = Date.now() - this.lastRecv;
    const left = this.keepaliveTimeout - idle;
    if (left <= 0) {
      this.destroy(new PorticoError('TIMEOUT', `yamux: nothing received from the peer for ${idle} ms`, { idleMs: idle }));
      return;
    }
    let next: number;
    if (idle >= this.keepaliveInterval) {
      this.writeFrame(FrameType.Ping, Flag.SYN, 0, this.takePingId());
      next = Math.min(this.keepaliveInterval, left);
    } else {
      next = Math.min(this.keepaliveInterval - idle, left);
    }
    this.armKeepalive(next);
  };

  constructor(socket: Duplex, opts: SessionOptions) {
    super();
    this.socket = socket;
    this.isClient = opts.isClient;
    const maxWin = opts.maxStreamWindow ?? DEFAULT_MAX_STREAM_WINDOW;
    if (!Number.isInteger(maxWin) || maxWin < INITIAL_STREAM_WINDOW || maxWin > MAX_WINDOW) {
      throw new PorticoError('VALIDATION_FAILED', `maxStreamWindow must be an integer in [${INITIAL_STREAM_WINDOW}, ${MAX_WINDOW}]`, { field: 'maxStreamWindow' });
    }
    this.maxStreamWindow = maxWin;
    this.extraCredit = maxWin - INITIAL_STREAM_WINDOW;
    this._creditThreshold = Math.floor(maxWin / 2);
    this.keepaliveInterval = opts.keepaliveInterval ?? DEFAULT_KEEPALIVE_INTERVAL;
    this.keepaliveTimeout = opts.keepaliveTimeout ?? DEFAULT_KEEPALIVE_TIMEOUT;
    this.maxStreams = opts.maxStreams ?? DEFAULT_MAX_STREAMS;
    this.sendBudget = opts.sendBudget ?? DEFAULT_SEND_BUDGET;
    this.outputLimit = this.sendBudget + MAX_DATA_FRAME + HEADER_LENGTH + CONTROL_BACKLOG_LIMIT;
    this.onStream = opts.onStream;
    const first = opts.firstStreamId ?? (opts.isClient ? 1 : 2);
    if (first < 1 || (first & 1) !== (opts.isClient ? 1 : 0)) {
      throw new PorticoError('VALIDATION_FAILED', 'firstStreamId has the wrong parity for this side', { field: 'firstStreamId' });
    }
    this.nextStreamId = first;

    this.decoder = new FrameDecoder({
      onFrame: (h) => this.handleFrame(h),
      onData: (_h, chunk) => {
        const st = this.dataTarget;
        if (st !== null && !st._removed) st._pushData(chunk);
      },
      onDataEnd: (h) => {
        const st = this.dataTarget;
        this.dataTarget = null;
        if (st !== null && !st._removed && (h.flags & (Flag.FIN | Flag.RST)) !== 0) this.applyCloseFlags(st, h.flags);
      },
    });

    socket.on('data', this.onSocketData);
    socket.on('drain', this.onSocketDrain);
    socket.on('end', this.onSocketEnd);
    socket.on('error', this.onSocketError);
    socket.on('close', this.onSocketClose);
    if (this.keepaliveInterval > 0) this.armKeepalive(Math.min(this.keepaliveInterval, this.keepaliveTimeout));
  }

  /** Currently open (not fully closed) streams. */
  get streamCount(): number {
    return this.streams.size;
  }

  /** True once close() finished or destroy() was called. */
  get closed(): boolean {
    return this._isDead;
  }

  /** False once either side sent GoAway or the session is closing: open() would throw. */
  get acceptsStreams(): boolean {
    return !this.localGoAway && !this.remoteGoAway && !this.closing && !this._isDead;
  }

  /** When the last frame arrived from the peer (epoch ms). */
  get lastReceivedAt(): number {
    return this.lastRecv;
  }

  /**
   * Opens a stream (synchronous). Its SYN rides on the first data frame when
   * written in the same tick, else goes out on the next tick or with end().
   * Throws SHUTTING_DOWN after a GoAway either way or once closing.
   */
  open(): MuxStream {
    if (this.closing || this._isDead) throw new PorticoError('SHUTTING_DOWN', 'yamux session is closed');
    if (this.remoteGoAway) throw new PorticoError('SHUTTING_DOWN', 'yamux peer sent GoAway: no new streams');
    if (this.localGoAway) throw new PorticoError('SHUTTING_DOWN', 'yamux GoAway sent: no new streams');
    const id = this.nextStreamId;
    if (id > MAX_STREAM_ID) throw new PorticoError('INTERNAL', 'yamux stream ids exhausted on this session; reconnect');
    this.nextStreamId = id + 2;
    const st = new MuxStream(this, id, Flag.SYN);
    this.streams.set(id, st);
    this.queueOpen(st);
    return st;
  }

  /** Measures the round trip with a ping; rejects with TIMEOUT after timeoutMs. */
  ping(timeoutMs: number = DEFAULT_PING_TIMEOUT): Promise<number> {
    if (this._isDead) return Promise.reject(new PorticoError('SHUTTING_DOWN', 'yamux session is closed'));
    const id = this.takePingId();
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(id);
        reject(new PorticoError('TIMEOUT', `yamux ping not answered within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.pings.set(id, { start: performance.now(), resolve, reject, timer });
      this.writeFrame(FrameType.Ping, Flag.SYN, 0, id);
    });
  }

  /**
   * Whether the peer is alive: true when it answers a ping within timeoutMs,
   * or sent any other frame meanwhile (a busy peer's pong may queue behind
   * its data); false when it stayed silent or the session is closed.
   */
  async probe(timeoutMs: number): Promise<boolean> {
    const sentAt = Date.now();
    try {
      await this.ping(timeoutMs);
      return true;
    } catch {
      return !this._isDead && this.lastRecv >= sentAt;
    }
  }

  /** Tells the peer we accept no new streams (and we open none); existing streams continue. */
  goAway(code: number = GoAwayCode.Normal): void {
    if (this.localGoAway || this._isDead) return;
    this.localGoAway = true;
    this.writeFrame(FrameType.GoAway, 0, 0, code);
  }

  /** GoAway, wait for open streams to finish, then end the socket; resolves once it is closed. */
  async close(): Promise<void> {
    if (!this._isDead) {
      this.goAway(GoAwayCode.Normal);
      this.closing = true;
      if (this.streams.size > 0) await new Promise<void>((resolve) => this.drainedWaiters.push(resolve));
      this.shutdown(undefined, true);
    }
    if (!this.closeEmitted) await new Promise<void>((resolve) => this.closeWaiters.push(resolve));
  }

  /** Hard stop: every stream is destroyed with err (without one if none: a premature close), the socket is destroyed. */
  destroy(err?: Error): void {
    this.shutdown(err, false);
  }

  // ---- internals used by MuxStream ----

  /** @internal */
  _deadError(): Error {
    return this.deadError ?? connectionLost('yamux session closed');
  }

  /** @internal Data frame (SYN/ACK and the extra credit ride along on a stream's first frame). */
  _sendData(st: MuxStream, payload: Buffer): void {
    const flag = st._openFlag === 0 ? 0 : this.claimOpen(st);
    this.writeFrame(FrameType.Data, flag, st.id, payload.length, payload);
    if (flag !== 0 && this.extraCredit > 0) this.writeFrame(FrameType.WindowUpdate, 0, st.id, this.extraCredit);
  }

  /** @internal Returns consumed bytes to the peer as window. */
  _sendWindowUpdate(st: MuxStream, delta: number): void {
    if (this._isDead) return;
    const flag = st._openFlag === 0 ? 0 : this.claimOpen(st);
    this.writeFrame(FrameType.WindowUpdate, flag, st.id, flag !== 0 ? delta + this.extraCredit : delta);
  }

  /** @internal Half-close. */
  _sendFin(st: MuxStream): void {
    const flag = st._openFlag === 0 ? 0 : this.claimOpen(st);
    this.writeFrame(FrameType.WindowUpdate, flag | Flag.FIN, st.id, flag !== 0 ? this.extraCredit : 0);
  }

  /** @internal Reset; a stream the peer never heard of is dropped silently. */
  _sendRst(st: MuxStream): void {
    if (st._openFlag === Flag.SYN) {
      st._openFlag = 0;
      return;
    }
    st._openFlag = 0;
    this.writeFrame(FrameType.WindowUpdate, Flag.RST, st.id, 0);
  }

  /** @internal */
  _removeStream(st: MuxStream): void {
    if (st._removed) return;
    st._removed = true;
    this.streams.delete(st.id);
    if (this.streams.size === 0 && this.drainedWaiters.length > 0) {
      const waiters = this.drainedWaiters;
      this.drainedWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** @internal The stream resumes in _flushWrite when the socket drains. */
  _waitDrain(st: MuxStream): void {
    if (st._waitingDrain) return;
    st._waitingDrain = true;
    this.drainWaiters.push(st);
  }

  // ---- sending ----

  private takePingId(): number {
    const id = this.nextPingId;
    this.nextPingId = id === 0xffff_ffff ? 1 : id + 1;
    return id;
  }

  /** Takes n bytes of a slab; never handed out twice, so safe to give to socket.write. */
  private alloc(n: number): Buffer {
    if (this.slabOff + n > SLAB_SIZE) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
      this.slabOff = 0;
    }
    const b = this.slab.subarray(this.slabOff, this.slabOff + n);
    this.slabOff += n;
    return b;
  }

  /**
   * Writes one frame now (control frames never wait for flow control or drain).
   * Frames written during one turn of the event loop are corked together and
   * flushed once, when the turn's I/O callbacks are done (setImmediate): the
   * requests (or responses) of every socket that was readable in that turn
   * go to the peer in one TLS write, which wakes it once. A flush per
   * callback (nextTick) woke the peer once per request; in alternating
   * HTTPS bench runs the turn flush won 12 of 16 pairs, +9 % req/s on
   * average, with less agent CPU per request. An idle loop flushes at once
   * (the check phase follows the poll phase that ran the callback); frames
   * written by other end-of-turn work (UDP flows' batches) go in the same
   * pass (util/turn-end.ts).
   */
  private writeFrame(type: number, flags: number, streamId: number, length: number, payload?: Buffer): void {
    if (this._isDead) return;
    const socket = this.socket;
    if (!this.corked) {
      this.corked = true;
      socket.cork();
      atTurnEnd(this.uncork);
    }
    let ok: boolean;
    let release: ReleaseFn | undefined;
    if (payload === undefined) {
      const hdr = this.alloc(HEADER_LENGTH);
      encodeHeader(hdr, 0, type, flags, streamId, length);
      ok = socket.write(hdr);
    } else if ((release = claimHeadroom(payload)) !== undefined) {
      // A socket reader's chunk or a UDP batch: the header goes into the free bytes in front of it.
      const framed = Buffer.from(payload.buffer, payload.byteOffset - HEADER_LENGTH, payload.length + HEADER_LENGTH);
      encodeHeader(framed, 0, type, flags, streamId, length);
      const done = release;
      ok = socket.write(framed, () => done(payload));
    } else if (payload.length <= SMALL_PAYLOAD) {
      const buf = this.alloc(HEADER_LENGTH + payload.length);
      encodeHeader(buf, 0, type, flags, streamId, length);
      payload.copy(buf, HEADER_LENGTH);
      ok = socket.write(buf);
    } else {
      const hdr = this.alloc(HEADER_LENGTH);
      encodeHeader(hdr, 0, type, flags, streamId, length);
      socket.write(hdr);
      ok = socket.write(payload);
    }
    // write() returning false only means "above 16 KiB"; block data at our own budget.
    // ('drain' still comes: a write that crossed the budget also returned false.)
    if (!ok && socket.writableLength >= this.sendBudget) {
      this._writeBlocked = true;
      if (socket.writableLength > this.outputLimit && !this.overflowing) {
        // Not from inside the write path (a stream may be mid-flush): on the next tick.
        this.overflowing = true;
        const queued = socket.writableLength;
        process.nextTick(() => this.destroy(new PorticoError('PROTOCOL_ERROR', `yamux peer does not read: ${queued} bytes queued for it (limit ${this.outputLimit})`)));
      }
    }
  }

  private drain(): void {
    this._writeBlocked = false;
    const waiters = this.drainWaiters;
    if (waiters.length === 0) return;
    this.drainWaiters = [];
    for (let i = 0; i < waiters.length; i++) {
      const st = waiters[i]!;
      st._waitingDrain = false;
      if (!st.destroyed) st._flushWrite();
    }
  }

  private queueOpen(st: MuxStream): void {
    this.pendingOpen.push(st);
    if (!this.openFlushScheduled) {
      this.openFlushScheduled = true;
      process.nextTick(this.flushOpens);
    }
  }

  /** Takes st's SYN/ACK for its frame, first sending the SYN/ACKs of streams queued before it. */
  private claimOpen(st: MuxStream): number {
    const q = this.pendingOpen;
    while (this.pendingOpenHead < q.length) {
      const o = q[this.pendingOpenHead++]!;
      if (o === st) break;
      if (o._openFlag !== 0 && !o._removed) this.sendOpen(o);
    }
    if (this.pendingOpenHead >= q.length) {
      q.length = 0;
      this.pendingOpenHead = 0;
    }
    const flag = st._openFlag;
    st._openFlag = 0;
    st._recvWindow += this.extraCredit;
    return flag;
  }

  private sendOpen(st: MuxStream): void {
    const flag = st._openFlag;
    st._openFlag = 0;
    st._recvWindow += this.extraCredit;
    this.writeFrame(FrameType.WindowUpdate, flag, st.id, this.extraCredit);
  }

  // ---- receiving ----

  private handleFrame(h: FrameHeader): void {
    switch (h.type) {
      case FrameType.Data:
      case FrameType.WindowUpdate:
        this.handleStreamFrame(h);
        return;
      case FrameType.Ping:
        if (h.streamId !== 0) throw protocolError(`ping on stream ${h.streamId}`);
        if ((h.flags & Flag.SYN) !== 0) this.writeFrame(FrameType.Ping, Flag.ACK, 0, h.length);
        else if ((h.flags & Flag.ACK) !== 0) {
          const p = this.pings.get(h.length);
          if (p !== undefined) {
            this.pings.delete(h.length);
            clearTimeout(p.timer);
            p.resolve(performance.now() - p.start);
          }
        }
        return;
      case FrameType.GoAway:
        if (h.streamId !== 0) throw protocolError(`GoAway on stream ${h.streamId}`);
        this.remoteGoAway = true;
        this.emit('goaway', h.length);
        if (h.length !== GoAwayCode.Normal && !this._isDead) {
          const code = h.length === GoAwayCode.ProtocolError ? 'PROTOCOL_ERROR' : 'INTERNAL';
          this.decoder.stop();
          this.shutdown(new PorticoError(code, `yamux peer sent GoAway with error code ${h.length}`, { goAwayCode: h.length }), false);
        }
        return;
    }
  }

  private handleStreamFrame(h: FrameHeader): void {
    const id = h.streamId;
    if (id === 0) throw protocolError('data or window update on stream 0');
    const flags = h.flags;
    let st = this.streams.get(id);
    if ((flags & Flag.SYN) !== 0) {
      if (st !== undefined) throw protocolError(`duplicate SYN for stream ${id}`);
      st = this.accept(id);
    } else if (st === undefined && !this.isStale(id)) {
      throw protocolError(`frame for stream ${id} that was never opened`);
    }
    if (h.type === FrameType.Data) {
      if (st !== undefined) {
        if (st._remoteClosed) throw protocolError(`data on stream ${id} after FIN`);
        if (h.length > st._recvWindow) {
          throw protocolError(`stream ${id} sent ${h.length} bytes with a window of ${st._recvWindow}`);
        }
        st._recvWindow -= h.length;
      }
      this.dataTarget = st ?? null;
      return;
    }
    if (st === undefined) return;
    if ((flags & Flag.ACK) !== 0) {
      // Accepted: nothing to track, data may already be flowing.
    }
    if (h.length > 0) {
      if (st._sendWindow + h.length > MAX_WINDOW) throw protocolError(`window of stream ${id} grown beyond 2^32-1`);
      st._onWindowUpdate(h.length);
    }
    if ((flags & (Flag.FIN | Flag.RST)) !== 0 && !st._removed) this.applyCloseFlags(st, flags);
  }

  private applyCloseFlags(st: MuxStream, flags: number): void {
    if ((flags & Flag.RST) !== 0) st._onRemoteReset();
    else if (!st._remoteClosed) st._onRemoteFin();
  }

  /** A frame for an id we do not track: stale (closed earlier) or never opened? */
  private isStale(id: number): boolean {
    const ours = (id & 1) === (this.isClient ? 1 : 0);
    return ours ? id < this.nextStreamId : id <= this.maxInboundId;
  }

  /** Inbound SYN: a new stream, or an RST when going away or at maxStreams. */
  private accept(id: number): MuxStream | undefined {
    if ((id & 1) === (this.isClient ? 1 : 0)) throw protocolError(`peer opened stream ${id} with our parity`);
    if (id > this.maxInboundId) this.maxInboundId = id;
    if (this.localGoAway || this.closing || this.streams.size >= this.maxStreams) {
      this.writeFrame(FrameType.WindowUpdate, Flag.RST, id, 0);
      return undefined;
    }
    const st = new MuxStream(this, id, Flag.ACK);
    this.streams.set(id, st);
    this.queueOpen(st);
    this.emit('stream', st);
    this.onStream?.(st);
    return st;
  }

  // ---- lifecycle ----

  private armKeepalive(delay: number): void {
    const t = setTimeout(this.onKeepalive, Math.max(1, delay));
    t.unref();
    this.keepaliveTimer = t;
  }

  /** Malformed input or a failing handler: GoAway with a code, then shut down. */
  private fail(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    if (this._isDead) return;
    const isProto = e instanceof PorticoError && e.code === 'PROTOCOL_ERROR';
    this.localGoAway = true;
    this.writeFrame(FrameType.GoAway, 0, 0, isProto ? GoAwayCode.ProtocolError : GoAwayCode.InternalError);
    this.shutdown(e, true);
  }

  /**
   * Ends the session once: streams destroyed (with err, or a connection-lost
   * error when they are cut short), timers cleared, pings rejected. Graceful
   * ends the socket (flushing a GoAway) with a hard deadline; else destroys it.
   */
  private shutdown(err: Error | undefined, graceful: boolean): void {
    if (this._isDead) {
      if (!graceful && !this.socket.destroyed) this.socket.destroy();
      return;
    }
    this._isDead = true;
    this.closing = true;
    this.deadError = err;
    this.decoder.stop();
    if (this.keepaliveTimer !== null) {
      clearTimeout(this.keepaliveTimer);
      this.keepaliveTimer = null;
    }
    const pingErr = err ?? new PorticoError('SHUTTING_DOWN', 'yamux session closed');
    for (const p of this.pings.values()) {
      clearTimeout(p.timer);
      p.reject(pingErr);
    }
    this.pings.clear();
    this.drainWaiters = [];
    this.pendingOpen = [];
    this.pendingOpenHead = 0;
    if (this.streams.size > 0) {
      // destroy() without an error destroys streams without one too (readers see a premature close).
      const list = [...this.streams.values()];
      this.streams.clear();
      for (const st of list) {
        st._removed = true;
        st.destroy(err);
      }
    }
    const waiters = this.drainedWaiters;
    this.drainedWaiters = [];
    for (const w of waiters) w();

    const socket = this.socket;
    socket.removeListener('data', this.onSocketData);
    socket.removeListener('drain', this.onSocketDrain);
    socket.removeListener('end', this.onSocketEnd);
    socket.removeListener('error', this.onSocketError);
    // A late socket error after we let go must not crash the process.
    socket.on('error', noop);
    if (this.corked) {
      this.corked = false;
      socket.uncork();
    }
    if (graceful && !socket.destroyed) {
      socket.end();
      this.graceTimer = setTimeout(() => socket.destroy(), GOAWAY_GRACE_MS);
      this.graceTimer.unref();
    } else {
      socket.destroy();
    }
    if (socket.closed) process.nextTick(() => this.emitClose());
  }

  private emitClose(): void {
    if (this.closeEmitted) return;
    this.closeEmitted = true;
    if (this.graceTimer !== null) {
      clearTimeout(this.graceTimer);
      this.graceTimer = null;
    }
    this.socket.removeListener('close', this.onSocketClose);
    // 'close' is the socket's last event: the guard is no longer needed.
    this.socket.removeListener('error', noop);
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    for (const w of waiters) w();
    this.emit('close', this.deadError);
  }
}

function protocolError(message: string): PorticoError {
  return new PorticoError('PROTOCOL_ERROR', `yamux: ${message}`);
}

function connectionLost(message: string): Error {
  const err = new Error(message) as NodeJS.ErrnoException;
  err.code = 'ECONNRESET';
  return err;
}
