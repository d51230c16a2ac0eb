import { Duplex } from 'node:stream';
import { INITIAL_STREAM_WINDOW, MAX_DATA_FRAME } from './constants.js';
import type { Session } from './session.js';

type WriteCallback = (err?: Error | null) => void;

/** The error a stream is destroyed with when the peer resets it. */
export function streamResetError(id: number): Error {
  const err = new Error(`yamux stream ${id} reset by peer`) as NodeJS.ErrnoException;
  err.code = 'ECONNRESET';
  return err;
}

/**
 * One yamux stream: a Duplex whose writes become data frames (bounded by the
 * peer's window) and whose reads return credit to the peer as they are consumed.
 * end() sends FIN, destroy() sends RST; a peer RST destroys it with ECONNRESET.
 */
export class MuxStream extends Duplex {
  readonly id: number;
  readonly session: Session;

  /** @internal SYN or ACK still to be sent with this stream's first frame, else 0. */
  _openFlag: number;
  /** @internal Bytes we may still send before the peer grants more. */
  _sendWindow = INITIAL_STREAM_WINDOW;
  /** @internal Bytes the peer may still send us. */
  _recvWindow = INITIAL_STREAM_WINDOW;
  /** @internal We sent FIN or RST. */
  _localClosed = false;
  /** @internal We received FIN or RST. */
  _remoteClosed = false;
  /** @internal Removed from the session's stream table (ids are never reused). */
  _removed = false;
  /** @internal Waiting in the session's drain list. */
  _waitingDrain = false;

  /** Bytes received and pushed to the readable side. */
  private received = 0;
  /** Consumed bytes already returned to the peer as window credit. */
  private credited = 0;
  /** Bytes read out but still buffered downstream (see holdCredit), or null. */
  private held: (() => number) | null = null;
  /** The chunk being written, how far it went and its callback. */
  private wChunk: Buffer | null = null;
  private wOff = 0;
  private wCb: WriteCallback | null = null;

  /** @internal Streams are made by Session.open() and by the session for inbound SYNs. */
  constructor(session: Session, id: number, openFlag: number) {
    super({ allowHalfOpen: true });
    this.session = session;
    this.id = id;
    this._openFlag = openFlag;
  }

  /**
   * True if write() of `bytes` now would go to the session at once, whole: no
   * write is pending, the session's socket is not blocked, and the peer's
   * window and one frame hold it. A writer whose buffer must not linger (a
   * slab's, util/headroom.ts) asks first.
   */
  sendableNow(bytes: number): boolean {
    return (
      this.wChunk === null &&
      this.writableLength === 0 &&
      bytes <= this._sendWindow &&
      bytes <= MAX_DATA_FRAME &&
      !this.session._writeBlocked &&
      !this.session._isDead &&
      !this.destroyed &&
      !this.writableEnded
    );
  }

  // ---- receive side ----

  /** @internal A payload piece arrived (the window was checked by the session). */
  _pushData(chunk: Buffer): void {
    this.received += chunk.length;
    this.push(chunk);
    this._returnCredit();
  }

  /** @internal Peer half-closed. */
  _onRemoteFin(): void {
    this._remoteClosed = true;
    this.push(null);
    if (this._localClosed) this.session._removeStream(this);
  }

  /** @internal Peer reset the stream. */
  _onRemoteReset(): void {
    this._remoteClosed = true;
    this._localClosed = true;
    this._openFlag = 0;
    this.session._removeStream(this);
    this.destroy(streamResetError(this.id));
  }

  /**
   * Returns window credit for what the application consumed (pushed minus
   * still buffered), once at least half the max window is owed: a stream nobody
   * reads stalls its sender at one window.
   */
  private _returnCredit(): void {
    if (this._remoteClosed || this.destroyed) return;
    const held = this.held;
    const consumed = this.received - this.readableLength - (held === null ? 0 : held());
    const owed = consumed - this.credited;
    if (owed >= this.session._creditThreshold) {
      this.credited = consumed;
      this._recvWindow += owed;
      this.session._sendWindowUpdate(this, owed);
    }
  }

  /**
   * Counts `bytes()` (data read out of this stream but still queued downstream,
   * e.g. in the socket splice writes it to) as not consumed: credit goes back
   * only for data that left the process, so stream buffer + downstream buffer
   * stay within one window. Call recheckCredit() when the downstream buffer
   * shrinks (its write callbacks).
   */
  holdCredit(bytes: () => number): void {
    this.held = bytes;
  }

  /** Returns credit that became due since the downstream buffer shrank. */
  recheckCredit(): void {
    if (this.received !== this.credited) this._returnCredit();
  }

  // read() is where consumption happens in every reading mode (flowing, paused,
  // async iteration, pipe); _read alone is not called again until the next push.
  override read(size?: number): any {
    const r = super.read(size);
    if (this.received !== this.credited) this._returnCredit();
    return r;
  }

  override _read(): void {
    this._returnCredit();
  }

  // ---- send side ----

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: WriteCallback): void {
    if (this.session._isDead) {
      cb(this.session._deadError());
      return;
    }
    this.wChunk = chunk;
    this.wOff = 0;
    this.wCb = cb;
    this._flushWrite();
  }

  override _writev(chunks: Array<{ chunk: any; encoding: BufferEncoding }>, cb: WriteCallback): void {
    if (chunks.length === 1) {
      this._write(chunks[0]!.chunk as Buffer, chunks[0]!.encoding, cb);
      return;
    }
    let total = 0;
    for (let i = 0; i < chunks.length; i++) total += (chunks[i]!.chunk as Buffer).length;
    const buf = Buffer.allocUnsafe(total);
    let off = 0;
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!.chunk as Buffer;
      c.copy(buf, off);
      off += c.length;
    }
    this._write(buf, chunks[0]!.encoding, cb);
  }

  /**
   * @internal Sends as much of the pending chunk as the window and the socket
   * allow; called again on the peer's window update or on the socket's drain.
   * The write callback waits until the socket accepted everything without
   * asking us to wait (write() returned true or 'drain' came).
   */
  _flushWrite(): void {
    const chunk = this.wChunk;
    if (chunk === null) return;
    const session = this.session;
    for (;;) {
      if (session._writeBlocked) {
        session._waitDrain(this);
        return;
      }
      const left = chunk.length - this.wOff;
      if (left === 0) break;
      const win = this._sendWindow;
      if (win === 0) return; // resumed by _onWindowUpdate
      let n = left < win ? left : win;
      if (n > MAX_DATA_FRAME) n = MAX_DATA_FRAME;
      const piece = n === chunk.length ? chunk : chunk.subarray(this.wOff, this.wOff + n);
      this.wOff += n;
      this._sendWindow -= n;
      session._sendData(this, piece);
    }
    const cb = this.wCb!;
    this.wChunk = null;
    this.wCb = null;
    cb();
  }

  /** @internal The peer granted more send window. */
  _onWindowUpdate(delta: number): void {
    this._sendWindow += delta;
    if (this.wChunk !== null && !this._waitingDrain) this._flushWrite();
  }

  override _final(cb: WriteCallback): void {
    if (this.session._isDead) {
      cb(this.session._deadError());
      return;
    }
    if (!this._localClosed) {
      this._localClosed = true;
      this.session._sendFin(this);
      if (this._remoteClosed) this.session._removeStream(this);
    }
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const session = this.session;
    if (!this._removed) {
      if (!(this._localClosed && this._remoteClosed) && !session._isDead) session._sendRst(this);
      this._localClosed = true;
      this._remoteClosed = true;
      session._removeStream(this);
    }
    const wcb = this.wCb;
    this.wChunk = null;
    this.wCb = null;
    if (wcb !== null && err) wcb(err);
    cb(err);
  }
}
