import { FrameType, HEADER_LENGTH } from './constants.js';
import { decodeHeader, type FrameHeader } from './frame.js';

/** Receives what the decoder parses. Any throw stops the decoder. */
export interface FrameHandler {
  /** Every frame's header. For a data frame, its payload follows through onData/onDataEnd. */
  onFrame(h: FrameHeader): void;
  /** A non-empty piece of a data frame's payload, a subarray of the input (no copy). */
  onData(h: FrameHeader, chunk: Buffer): void;
  /** The data frame's payload is complete (also called for empty data frames). */
  onDataEnd(h: FrameHeader): void;
}

/**
 * Incremental yamux decoder: feed it bytes as they arrive, split anywhere.
 * Only a header split across inputs is copied (into a 12-byte scratch buffer);
 * payloads are passed on as slices of the input, as soon as they arrive.
 */
export class FrameDecoder {
  private readonly handler: FrameHandler;
  private readonly scratch = Buffer.allocUnsafe(HEADER_LENGTH);
  private scratchLen = 0;
  /** The data frame whose payload is being received, or null between frames. */
  private current: FrameHeader | null = null;
  private remaining = 0;
  private stopped = false;

  constructor(handler: FrameHandler) {
    this.handler = handler;
  }

  /** Stops parsing (the rest of the current input and all later input are ignored). */
  stop(): void {
    this.stopped = true;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Bytes of an incomplete frame held or expected: 0 means the input ended on a frame boundary. */
  get pending(): number {
    return this.scratchLen + this.remaining;
  }

  /** Parses `chunk`; throws (PROTOCOL_ERROR from the header check, or the handler's error) and stops. */
  write(chunk: Buffer): void {
    try {
      this.parse(chunk);
    } catch (err) {
      this.stopped = true;
      throw err;
    }
  }

  private parse(chunk: Buffer): void {
    const len = chunk.length;
    let off = 0;
    const handler = this.handler;
    while (off < len && !this.stopped) {
      const cur = this.current;
      if (cur !== null) {
        const n = Math.min(this.remaining, len - off);
        const piece = off === 0 && n === len ? chunk : chunk.subarray(off, off + n);
        off += n;
        this.remaining -= n;
        if (this.remaining === 0) this.current = null;
        handler.onData(cur, piece);
        if (this.remaining === 0 && !this.stopped) handler.onDataEnd(cur);
        continue;
      }
      let h: FrameHeader;
      if (this.scratchLen === 0 && len - off >= HEADER_LENGTH) {
        h = decodeHeader(chunk, off);
        off += HEADER_LENGTH;
      } else {
        const n = Math.min(HEADER_LENGTH - this.scratchLen, len - off);
        chunk.copy(this.scratch, this.scratchLen, off, off + n);
        this.scratchLen += n;
        off += n;
        if (this.scratchLen < HEADER_LENGTH) break;
        this.scratchLen = 0;
        h = decodeHeader(this.scratch, 0);
      }
      handler.onFrame(h);
      if (h.type === FrameType.Data && !this.stopped) {
        if (h.length === 0) handler.onDataEnd(h);
        else {
          this.current = h;
          this.remaining = h.length;
        }
      }
    }
  }
}
