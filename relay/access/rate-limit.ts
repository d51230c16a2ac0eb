/**
 * Token buckets keyed by string (`mapping` for a mapping's global bucket,
 * `mapping|user` or `mapping|ip` for a client's). A bucket holds up to
 * `burst` tokens and refills at `requests_per_minute / 60` per second; a
 * request takes one token or is told how long until one is back.
 *
 * Memory is bounded: a bucket that has refilled to full carries no state (a
 * new bucket starts full), so idle buckets are dropped by a sweep that runs
 * every `sweepEvery` new keys and whenever the table reaches `maxKeys`; if
 * every bucket is busy the oldest-created one is evicted (that client gets a
 * fresh, full bucket — the limit errs open for it, never for memory). No I/O,
 * no timers; `now` is passed in so tests control time.
 */

export interface Limit {
  /** Tokens per minute (refill rate). */
  requestsPerMinute: number;
  /** Bucket size; default requestsPerMinute (one minute's worth), at least 1. */
  burst: number;
}

interface Bucket {
  tokens: number;
  /** ms timestamp of the last refill. */
  at: number;
  /** Refill per ms and capacity the bucket was last used with. */
  perMs: number;
  cap: number;
}

export interface RateLimiterOptions {
  maxKeys?: number;
  sweepEvery?: number;
}

/** The stored `{requests_per_minute, burst_size}` as a Limit, or null when absent/invalid. */
export function limitFrom(doc: unknown): Limit | null {
  if (!doc || typeof doc !== 'object') return null;
  const d = doc as { requests_per_minute?: unknown; burst_size?: unknown };
  const rpm = d.requests_per_minute;
  if (typeof rpm !== 'number' || !(rpm > 0)) return null;
  const burst = typeof d.burst_size === 'number' && d.burst_size >= 1 ? Math.floor(d.burst_size) : Math.max(1, Math.floor(rpm));
  return { requestsPerMinute: rpm, burst };
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly maxKeys: number;
  private readonly sweepEvery: number;
  private inserts = 0;
  /** Buckets evicted while not yet full (table at maxKeys); should stay 0. */
  evictedBusy = 0;

  constructor(opts: RateLimiterOptions = {}) {
    this.maxKeys = Math.max(1, opts.maxKeys ?? 50_000);
    this.sweepEvery = Math.max(1, opts.sweepEvery ?? 1_024);
  }

  /** Buckets held now. */
  get size(): number {
    return this.buckets.size;
  }

  /**
   * Takes one token from `key`'s bucket. Returns 0 when allowed, else the ms
   * until a token is available (for Retry-After).
   */
  take(key: string, limit: Limit, now: number): number {
    const perMs = limit.requestsPerMinute / 60_000;
    const cap = limit.burst;
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (++this.inserts % this.sweepEvery === 0 || this.buckets.size >= this.maxKeys) this.sweep(now);
      if (this.buckets.size >= this.maxKeys) {
        const oldest = this.buckets.keys().next();
        if (!oldest.done) {
          this.buckets.delete(oldest.value);
          this.evictedBusy++;
        }
      }
      b = { tokens: cap, at: now, perMs, cap };
      this.buckets.set(key, b);
    } else {
      if (now > b.at) {
        b.tokens = Math.min(cap, b.tokens + (now - b.at) * perMs);
        b.at = now;
      }
      // The limit changed (PUT /proxy/access): keep what was used, within the new size.
      if (b.cap !== cap) b.tokens = Math.min(b.tokens, cap);
      b.perMs = perMs;
      b.cap = cap;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / perMs));
  }

  /** Like take without taking: 0 when a token is available now, else the ms until one is. */
  peek(key: string, limit: Limit, now: number): number {
    const b = this.buckets.get(key);
    if (b === undefined) return 0;
    const perMs = limit.requestsPerMinute / 60_000;
    const tokens = Math.min(limit.burst, b.tokens + Math.max(0, now - b.at) * perMs);
    return tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - tokens) / perMs));
  }

  /** Drops every bucket that has refilled to full by `now`. */
  sweep(now: number): number {
    let n = 0;
    for (const [k, b] of this.buckets) {
      if (b.tokens + (now - b.at) * b.perMs >= b.cap) {
        this.buckets.delete(k);
        n++;
      }
    }
    return n;
  }

  clear(): void {
    this.buckets.clear();
  }
}
