/**
 * A bounded FIFO of datagrams that makes room by dropping the OLDEST ones
 * (bounded in count and in bytes). For real-time UDP traffic the newest
 * datagram is the valuable one; a stale one only adds latency. Pure: no I/O.
 */
export class DropOldestQueue {
  private ring: (Buffer | undefined)[];
  private head = 0;
  private count = 0;
  private size = 0;
  /** Datagrams dropped over this queue's life. */
  dropped = 0;

  constructor(
    readonly maxItems: number,
    readonly maxBytes: number,
  ) {
    if (maxItems < 1 || maxBytes < 1) throw new RangeError('queue bounds must be positive');
    this.ring = new Array<Buffer | undefined>(Math.min(16, maxItems));
  }

  get length(): number {
    return this.count;
  }

  /** Payload bytes held. */
  get bytes(): number {
    return this.size;
  }

  /** Appends a datagram; returns how many datagrams were dropped to make room (the new one included if it alone exceeds maxBytes). */
  push(d: Buffer): number {
    if (d.length > this.maxBytes) {
      this.dropped++;
      return 1;
    }
    let dropped = 0;
    while (this.count > 0 && (this.count >= this.maxItems || this.size + d.length > this.maxBytes)) {
      this.shift();
      dropped++;
    }
    if (this.count === this.ring.length) this.grow();
    this.ring[(this.head + this.count) % this.ring.length] = d;
    this.count++;
    this.size += d.length;
    this.dropped += dropped;
    return dropped;
  }

  /** Removes and returns the oldest datagram. */
  shift(): Buffer | undefined {
    if (this.count === 0) return undefined;
    const d = this.ring[this.head]!;
    this.ring[this.head] = undefined;
    this.head = (this.head + 1) % this.ring.length;
    this.count--;
    this.size -= d.length;
    return d;
  }

  /** Removes and returns the oldest datagrams, up to `maxBytes` of payload (at least one when not empty). */
  take(maxBytes = Infinity): Buffer[] {
    const out: Buffer[] = [];
    let bytes = 0;
    while (this.count > 0) {
      const next = this.ring[this.head]!;
      if (out.length > 0 && bytes + next.length > maxBytes) break;
      bytes += next.length;
      out.push(this.shift()!);
    }
    return out;
  }

  clear(): void {
    this.ring = new Array<Buffer | undefined>(Math.min(16, this.maxItems));
    this.head = 0;
    this.count = 0;
    this.size = 0;
  }

  private grow(): void {
    const cap = Math.min(this.maxItems, this.ring.length * 2);
    const next = new Array<Buffer | undefined>(cap);
    for (let i = 0; i < this.count; i++) next[i] = this.ring[(this.head + i) % this.ring.length];
    this.ring = next;
    this.head = 0;
  }
}
