/**
 * A HyperLogLog sketch for unique visitors: 2^10 one-byte registers (1 KiB
 * per mapping), standard error about 1.04 / sqrt(1024) = 3.3 %, with the
 * linear-counting correction that makes small counts (under ~2.5k) nearly
 * exact. Values are hashed with FNV-1a and murmur3's 32-bit finaliser; adding
 * one costs a hash and a register max, no allocation.
 */
export const HLL_P = 10;
const M = 1 << HLL_P;
const ALPHA = 0.7213 / (1 + 1.079 / M);

/** 32-bit hash of a string: FNV-1a, then murmur3's fmix32 to spread the bits. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export interface HllJson {
  p: number;
  /** base64 of the registers. */
  r: string;
}

export class HyperLogLog {
  readonly registers = new Uint8Array(M);

  add(value: string): void {
    const h = hash32(value);
    const idx = h >>> (32 - HLL_P);
    // Rank of the first 1 bit in the remaining 22 bits (a sentinel bit bounds it).
    const rank = Math.clz32(((h << HLL_P) | (1 << (HLL_P - 1))) >>> 0) + 1;
    if (rank > this.registers[idx]!) this.registers[idx] = rank;
  }

  count(): number {
    let sum = 0;
    let zeros = 0;
    for (let i = 0; i < M; i++) {
      const r = this.registers[i]!;
      sum += 2 ** -r;
      if (r === 0) zeros++;
    }
    const e = (ALPHA * M * M) / sum;
    if (e <= 2.5 * M && zeros > 0) return Math.round(M * Math.log(M / zeros));
    return Math.round(e);
  }

  toJSON(): HllJson {
    return { p: HLL_P, r: Buffer.from(this.registers.buffer, this.registers.byteOffset, this.registers.byteLength).toString('base64') };
  }

  /** Restores a sketch saved by toJSON(); anything else gives an empty one. */
  static from(json: unknown): HyperLogLog {
    const h = new HyperLogLog();
    const j = json as Partial<HllJson> | null;
    if (j && j.p === HLL_P && typeof j.r === 'string') {
      const buf = Buffer.from(j.r, 'base64');
      if (buf.length === M) h.registers.set(buf);
    }
    return h;
  }
}
