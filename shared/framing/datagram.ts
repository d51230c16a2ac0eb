/**
 * Datagram framing on a UDP stream: each datagram is a 2-byte big-endian
 * length followed by exactly that many payload bytes (0..65,535), so datagram
 * boundaries survive the byte stream. Pure: no I/O (see docs/protocol.md).
 */

/** Largest payload one frame carries (the 2-byte length's range). */
export const MAX_DATAGRAM_BYTES = 65_535;
/** Bytes of framing per datagram. */
export const DATAGRAM_HEADER_BYTES = 2;

/**
 * A length no UDP payload can have (IPv4 carries at most 65,507 bytes,
 * IPv6 65,527) marks a **seal record** instead of a datagram: the relay's
 * request that the agent move this flow onto a sealed data connection
 * (docs/native-data-path.md), followed by the 16-byte id. Only sent to an
 * agent whose Hello said `sealed_udp`; a decoder without an `onSeal`
 * handler reads it as a datagram, as before.
 */
export const SEAL_RECORD_MARK = 0xffff;
export const SEAL_ID_BYTES = 16;

/** A seal record: `[0xffff][id:16]`. */
export function encodeSealRecord(id: Uint8Array): Buffer {
  if (id.length !== SEAL_ID_BYTES) throw new RangeError(`a seal record's id is ${SEAL_ID_BYTES} bytes`);
  const out = Buffer.allocUnsafe(DATAGRAM_HEADER_BYTES + SEAL_ID_BYTES);
  out.writeUInt16BE(SEAL_RECORD_MARK, 0);
  out.set(id, DATAGRAM_HEADER_BYTES);
  return out;
}

/** Frames one datagram: `[len:u16be][payload]`. Throws RangeError above 65,535 bytes. */
export function encodeDatagram(payload: Uint8Array): Buffer {
  return encodeDatagrams([payload]);
}

/**
 * Frames several datagrams into one buffer (one stream write for a burst),
 * taken from `alloc` (default: a new Buffer).
 */
export function encodeDatagrams(payloads: readonly Uint8Array[], alloc: (bytes: number) => Buffer = Buffer.allocUnsafe): Buffer {
  let total = 0;
  for (let i = 0; i < payloads.length; i++) {
    const n = payloads[i]!.length;
    if (n > MAX_DATAGRAM_BYTES) throw new RangeError(`datagram of ${n} bytes exceeds ${MAX_DATAGRAM_BYTES}`);
    total += DATAGRAM_HEADER_BYTES + n;
  }
  const out = alloc(total);
  let off = 0;
  for (let i = 0; i < payloads.length; i++) {
    const p = payloads[i]!;
    out[off] = p.length >>> 8;
    out[off + 1] = p.length & 0xff;
    out.set(p, off + 2);
    off += DATAGRAM_HEADER_BYTES + p.length;
  }
  return out;
}

/**
 * Incremental decoder: push() arbitrary chunks of the stream; every whole
 * datagram is handed to `onDatagram` in order. Datagrams wholly inside a chunk
 * are zero-copy views of it; only one that straddles chunks is copied. Every
 * byte sequence is valid framing, so decoding never fails; a stream that ends
 * mid-datagram leaves `pending` > 0.
 */
export class DatagramDecoder {
  /** First length byte, when a chunk ended after it. */
  private hi = -1;
  /** The datagram being reassembled across chunks, and how much of it arrived. */
  private part: Buffer | null = null;
  private partLen = 0;
  /** The part being reassembled is a seal record's id. */
  private partIsSeal = false;

  /** `onSeal`: seal records are handed to it (their id) instead of read as datagrams. */
  constructor(
    private readonly onDatagram: (datagram: Buffer) => void,
    private readonly onSeal: ((id: Buffer) => void) | null = null,
  ) {}

  /** Bytes held that do not yet make a whole datagram (framing included). */
  get pending(): number {
    if (this.part !== null) return DATAGRAM_HEADER_BYTES + this.partLen;
    return this.hi >= 0 ? 1 : 0;
  }

  push(chunk: Buffer): void {
    const n = chunk.length;
    let off = 0;
    if (this.hi >= 0) {
      if (n === 0) return;
      this.startPart((this.hi << 8) | chunk[0]!);
      this.hi = -1;
      off = 1;
    }
    if (this.part !== null) {
      const part = this.part;
      const k = Math.min(part.length - this.partLen, n - off);
      chunk.copy(part, this.partLen, off, off + k);
      this.partLen += k;
      off += k;
      if (this.partLen < part.length) return;
      this.part = null;
      this.partLen = 0;
      if (this.partIsSeal) {
        this.partIsSeal = false;
        this.onSeal!(part);
      } else this.onDatagram(part);
    }
    while (n - off >= DATAGRAM_HEADER_BYTES) {
      const len = (chunk[off]! << 8) | chunk[off + 1]!;
      const start = off + DATAGRAM_HEADER_BYTES;
      if (len === SEAL_RECORD_MARK && this.onSeal !== null) {
        if (n - start >= SEAL_ID_BYTES) {
          off = start + SEAL_ID_BYTES;
          this.onSeal(Buffer.from(chunk.subarray(start, off)));
          continue;
        }
        this.startPart(SEAL_RECORD_MARK);
      } else if (n - start >= len) {
        off = start + len;
        this.onDatagram(chunk.subarray(start, off));
        continue;
      } else this.startPart(len);
      chunk.copy(this.part!, 0, start, n);
      this.partLen = n - start;
      return;
    }
    if (n - off === 1) this.hi = chunk[off]!;
  }

  private startPart(len: number): void {
    if (len === SEAL_RECORD_MARK && this.onSeal !== null) {
      this.partIsSeal = true;
      len = SEAL_ID_BYTES;
    }
    this.part = Buffer.allocUnsafe(len);
    this.partLen = 0;
    if (len === 0) {
      const empty = this.part;
      this.part = null;
      this.onDatagram(empty);
    }
  }
}
