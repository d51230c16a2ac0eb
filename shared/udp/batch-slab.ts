/**
 * Buffers for UDP batches, cut from slabs that are reused. A busy flow frames
 * tens of thousands of datagrams a second; a new Buffer per batch (and the mux
 * copying a one-datagram batch into a frame of its own) cost every datagram
 * 3–4 KB of fresh ArrayBuffer memory on top of node:dgram's own 1.5 KB, which
 * V8 counts as external memory and answers with garbage collections
 * (docs/benchmarks.md, session 12).
 *
 * A batch is cut from the current slab with HEADROOM free bytes in front,
 * offered to the mux (util/headroom.ts): the frame header goes there and the
 * batch reaches the socket without another copy. The mux gives each batch
 * back from its socket write callback; a slab whose batches have all come
 * back, and which is no longer being cut, is reused. A batch that is never
 * given back (its stream split it, or died first) only keeps its slab from
 * being reused: it is then left to the garbage collector, never reused early.
 * Writers take a slab batch only when the stream would send it at once
 * (MuxStream.sendableNow): a batch held in a stream whose peer grants no
 * window would pin a whole slab for a few bytes, so a hostile or stuck peer
 * could turn each held byte into kilobytes of relay memory.
 */
import { HEADROOM, offerHeadroom } from '../util/headroom.js';

/** Slab size: holds a burst of ~85 full-size datagrams. */
export const BATCH_SLAB_BYTES = 128 * 1024;
/** Spare slabs kept for reuse. */
const SPARE_MAX = 8;

class Slab {
  readonly buf = Buffer.allocUnsafeSlow(BATCH_SLAB_BYTES);
  used = 0;
  /** Batches cut from it, and how many of them came back. */
  cut = 0;
  returned = 0;
  /** Being cut from (not reusable even when all batches are back). */
  current = true;
  /** The release function offered with each of its batches. */
  readonly release = (): void => {
    this.returned++;
    if (!this.current && this.returned === this.cut) reuse(this);
  };
}

const spare: Slab[] = [];
let slab = new Slab();
/** Slabs made and reuses, for tests and diagnostics. */
export const batchSlabStats = { made: 1, reused: 0 };

function reuse(s: Slab): void {
  if (spare.length >= SPARE_MAX) return;
  s.used = 0;
  s.cut = 0;
  s.returned = 0;
  spare.push(s);
}

function nextSlab(): void {
  const old = slab;
  old.current = false;
  if (old.returned === old.cut) reuse(old);
  const s = spare.pop();
  if (s !== undefined) {
    batchSlabStats.reused++;
    s.current = true;
    slab = s;
  } else {
    batchSlabStats.made++;
    slab = new Slab();
  }
}

const noop = (): void => undefined;

/** `bytes` of buffer with HEADROOM free bytes in front, offered to the mux; nothing else holds those bytes until it is given back. */
export function allocBatch(bytes: number): Buffer {
  const need = HEADROOM + bytes;
  if (need > BATCH_SLAB_BYTES) {
    const own = Buffer.allocUnsafeSlow(need).subarray(HEADROOM);
    offerHeadroom(own, noop);
    return own;
  }
  if (slab.used + need > BATCH_SLAB_BYTES) nextSlab();
  const s = slab;
  const out = s.buf.subarray(s.used + HEADROOM, s.used + need);
  s.used += (need + 7) & ~7;
  s.cut++;
  offerHeadroom(out, s.release);
  return out;
}
