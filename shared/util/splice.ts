/**
 * Joins two byte streams both ways with backpressure (pipe), half-close
 * (an end on one side ends the other's write side) and error propagation
 * (an error or close on one side destroys the other). Counts bytes.
 * With `bReady`, b -> a starts only once it resolves true (a -> b flows at
 * once: the relay sends a client's first bytes along with the stream header).
 */
import type { Duplex } from 'node:stream';

export interface SpliceStats {
  /** Bytes read from a and written to b. */
  aToB: number;
  /** Bytes read from b and written to a. */
  bToA: number;
}

export function splice(a: Duplex, b: Duplex, onDone?: (stats: SpliceStats, err?: Error) => void, bReady?: Promise<boolean>): SpliceStats {
  const stats: SpliceStats = { aToB: 0, bToA: 0 };
  let done = false;
  let closed = 0;
  let firstErr: Error | undefined;
  const finish = () => {
    if (done) return;
    done = true;
    onDone?.(stats, firstErr);
  };
  const onClose = (self: Duplex, other: Duplex) => () => {
    // A side that closed cleanly has ended both ways, so pipe() already ends the
    // other one, which then flushes by itself. A side that closed without its
    // readable end (reset, error, destroy) aborts the other.
    if (!other.destroyed && (!self.readableEnded || self.errored)) other.destroy();
    if (++closed === 2) finish();
  };
  const onError = (err: Error) => {
    firstErr ??= err;
  };
  a.on('error', onError);
  b.on('error', onError);
  a.once('close', onClose(a, b));
  b.once('close', onClose(b, a));
  a.on('data', (c: Buffer) => (stats.aToB += c.length));
  a.pipe(b);
  const startB = () => {
    b.on('data', (c: Buffer) => (stats.bToA += c.length));
    b.pipe(a);
  };
  if (!bReady) startB();
  else
    bReady.then(
      (ok) => (ok ? startB() : abort()),
      (err: Error) => {
        onError(err);
        abort();
      },
    );
  const abort = () => {
    a.destroy();
    b.destroy();
  };
  return stats;
}
