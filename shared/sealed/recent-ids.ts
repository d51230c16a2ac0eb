/**
 * The sealed ids this side has derived keys for lately. A stream's keys and
 * nonce counters come from its id (shared/sealed/keys.ts), so the same id a
 * second time in one TLS session would seal different bytes under the same
 * key and nonces. The relay draws ids at random; the agent keeps this as a
 * check on it. Memory is bounded: two generations of `perGeneration` ids,
 * the older dropped when the newer fills, so the last `perGeneration` ids
 * (and up to twice as many) are always remembered.
 */
export class RecentIds {
  private current = new Set<string>();
  private previous = new Set<string>();

  constructor(private readonly perGeneration: number) {}

  /** Records `id`; false when it was already seen (and is still remembered). */
  add(id: Buffer): boolean {
    const k = id.toString('latin1');
    if (this.current.has(k) || this.previous.has(k)) return false;
    if (this.current.size >= this.perGeneration) {
      this.previous = this.current;
      this.current = new Set();
    }
    this.current.add(k);
    return true;
  }

  /** Ids remembered now (at most twice perGeneration). */
  get size(): number {
    return this.current.size + this.previous.size;
  }
}
