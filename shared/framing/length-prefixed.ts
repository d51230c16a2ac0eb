/**
 * Length-prefixed message framing: a 4-byte big-endian length, then that many
 * bytes. Used for control-channel envelopes and the per-stream header and
 * open-result. Pure: no I/O, so it is fuzzable byte by byte.
 */
import { PorticoError } from '../errors.js';

/** Largest message either side accepts (control envelopes and stream headers). */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

/** Returns `[len][payload]` as one buffer. */
export function encodeFrame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, 4);
  return out;
}

/**
 * Incremental decoder: feed() arbitrary chunks, get whole messages back.
 * Throws PROTOCOL_ERROR when a length exceeds `maxBytes`.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private need = -1;

  constructor(private readonly maxBytes = MAX_MESSAGE_BYTES) {}

  /** Bytes held that do not yet make a whole message. */
  get pending(): number {
    return this.buffered;
  }

  /** Adds a chunk and returns up to `max` whole messages; later bytes stay buffered. */
  feed(chunk: Buffer, max = Infinity): Buffer[] {
    const out: Buffer[] = [];
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    while (out.length < max) {
      if (this.need < 0) {
        if (this.buffered < 4) break;
        const len = this.take(4).readUInt32BE(0);
        if (len > this.maxBytes) {
          throw new PorticoError('PROTOCOL_ERROR', `message of ${len} bytes exceeds the ${this.maxBytes}-byte limit`);
        }
        this.need = len;
      }
      if (this.buffered < this.need) break;
      out.push(this.take(this.need));
      this.need = -1;
    }
    return out;
  }

  /** Everything buffered beyond the messages returned so far (the stream's raw bytes after a header). */
  drain(): Buffer {
    if (this.chunks.length === 0) return Buffer.alloc(0);
    const rest = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    this.chunks = [];
    this.buffered = 0;
    return rest;
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0); // an empty message (e.g. an all-defaults protobuf)
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const c = this.chunks[0]!;
        const k = Math.min(c.length, n - off);
        c.copy(out, off, 0, k);
        off += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.buffered -= n;
    return out;
  }
}
