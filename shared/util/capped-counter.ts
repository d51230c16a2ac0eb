/** Counts per key (e.g. connections per IP address) up to a cap; keys at zero are forgotten. */
export class CappedCounter {
  private readonly counts = new Map<string, number>();

  constructor(readonly cap: number) {}

  /** Takes one for `key`; false, taking nothing, when the key is at its cap. */
  tryTake(key: string): boolean {
    const n = this.counts.get(key) ?? 0;
    if (n >= this.cap) return false;
    this.counts.set(key, n + 1);
    return true;
  }

  /** Gives one back. */
  release(key: string): void {
    const left = (this.counts.get(key) ?? 1) - 1;
    if (left <= 0) this.counts.delete(key);
    else this.counts.set(key, left);
  }

  /** Keys with at least one taken. */
  get size(): number {
    return this.counts.size;
  }
}
