// A small HDR-style log-linear histogram over nanoseconds: 64 linear
// sub-buckets per power of two (≤ 1.6 % relative error), constant memory,
// O(1) record, exact min/max/mean on the side.
const SUB_BITS = 6;
const SUB = 1 << SUB_BITS; // 64
const MAX_EXP = 44; // up to ~4.9 hours in ns

export class Histogram {
  private readonly counts = new Float64Array((MAX_EXP + 2) * SUB);
  count = 0;
  min = Number.POSITIVE_INFINITY;
  max = 0;
  private sum = 0;

  record(ns: number): void {
    const v = Math.max(0, Math.round(ns));
    this.counts[Histogram.index(v)] = (this.counts[Histogram.index(v)] ?? 0) + 1;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.sum = 0;
    this.min = Number.POSITIVE_INFINITY;
    this.max = 0;
  }

  get mean(): number {
    return this.count ? this.sum / this.count : Number.NaN;
  }

  /** Value at percentile p (0..100), as the midpoint of its bucket clamped to [min, max]. */
  percentile(p: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) {
        const [lo, hi] = Histogram.bounds(i);
        return Math.min(this.max, Math.max(this.min, (lo + hi) / 2));
      }
    }
    return this.max;
  }

  static index(v: number): number {
    if (v < 2 * SUB) return v < SUB ? v : SUB + (v - SUB); // exact below 128
    const exp = Math.min(MAX_EXP, Math.floor(Math.log2(v)) - SUB_BITS); // ≥ 1
    const sub = Math.floor(v / 2 ** exp); // in [64, 128)
    return (exp + 1) * SUB + (Math.min(sub, 2 * SUB - 1) - SUB);
  }

  static bounds(i: number): [number, number] {
    if (i < 2 * SUB) return [i, i + 1];
    const exp = Math.floor(i / SUB) - 1;
    const sub = (i % SUB) + SUB;
    return [sub * 2 ** exp, (sub + 1) * 2 ** exp];
  }
}
