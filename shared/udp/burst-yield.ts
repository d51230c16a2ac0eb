/**
 * Lets a local app drain its socket while the agent delivers a burst of UDP
 * datagrams to it. A datagram sent to an app on this machine lands in the
 * app's receive buffer at once (iperf3's default: 212 KB, 92 datagrams of
 * 1460 B), and one wake-up of the agent can deliver far more than that: libuv
 * reads the tunnel socket up to 32 times per wake-up and every record's
 * datagrams go out back to back. When the app is waiting for this very CPU,
 * the burst overflows its buffer and the kernel drops the rest — after the
 * tunnel already carried them.
 *
 * So after every `everyBytes` of receive-buffer footprint sent in one
 * event-loop turn the thread sleeps `pauseUs` (a futex wait: the kernel runs
 * whatever is runnable here, typically the app just woken by our datagrams),
 * at most `maxPauses` times per turn so other streams never wait more than
 * maxPauses × pauseUs. A datagram's footprint is its length plus the
 * kernel's per-datagram overhead (~640 B on loopback), as the receiver's
 * buffer counts it: a 212 KB buffer holds 92 datagrams of 1460 B but ~300 of
 * 64 B, so small datagrams pause less often. The count starts again every
 * turn: steady traffic below `everyBytes` per turn is never paused. Figures: docs/benchmarks.md ("UDP").
 */

export interface BurstYieldOptions {
  /** Receive-buffer footprint (bytes) sent per pause within one turn. */
  everyBytes: number;
  /** Length of one pause, µs. */
  pauseUs: number;
  /** Pauses allowed per turn. */
  maxPauses: number;
  /** How the thread sleeps (tests count calls instead). */
  sleep?: (us: number) => void;
  /** How the end of a turn is detected (tests may drive it). */
  nextTurn?: (fn: () => void) => void;
}

/** Kernel bookkeeping per datagram in a receiver's buffer on loopback (skb truesize minus payload, measured ~600–700 B). */
export const DATAGRAM_OVERHEAD_BYTES = 640;

/**
 * A pause per quarter of a default 212 KB receive buffer (~25 datagrams of
 * 1460 B, ~75 of 64 B); other streams wait at most 64 × 50 µs = 3.2 ms per
 * turn (a cap of 16 was reached even at 500 Mbit/s after a descheduling gap).
 */
export const BURST_YIELD_DEFAULTS = { everyBytes: 52 * 1024, pauseUs: 50, maxPauses: 64 } as const;

const futex = new Int32Array(new SharedArrayBuffer(4));

/** Blocks this thread for about `us` µs without spinning (Atomics.wait on a word nobody notifies). */
export function sleepMicros(us: number): void {
  Atomics.wait(futex, 0, 0, us / 1000);
}

export class BurstYield {
  private sent = 0;
  private pauses = 0;
  private turnPending = false;
  /** Pauses taken so far (for tests and stats). */
  totalPauses = 0;
  private readonly sleep: (us: number) => void;
  private readonly nextTurn: (fn: () => void) => void;

  constructor(private readonly opts: BurstYieldOptions = BURST_YIELD_DEFAULTS) {
    this.sleep = opts.sleep ?? sleepMicros;
    this.nextTurn = opts.nextTurn ?? ((fn) => void setImmediate(fn));
  }

  /** Call after each datagram sent to a local app, with its payload length. */
  sent1(length: number): void {
    if (!this.turnPending) {
      this.turnPending = true;
      this.nextTurn(this.resetTurn);
    }
    this.sent += length + DATAGRAM_OVERHEAD_BYTES;
    if (this.sent < this.opts.everyBytes) return;
    this.sent = 0;
    if (this.pauses >= this.opts.maxPauses) return;
    this.pauses++;
    this.totalPauses++;
    this.sleep(this.opts.pauseUs);
  }

  private readonly resetTurn = (): void => {
    this.turnPending = false;
    this.sent = 0;
    this.pauses = 0;
  };
}
