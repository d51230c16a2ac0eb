/**
 * Work for the end of the current event-loop turn: one setImmediate runs
 * every callback registered during the turn, in order, after the turn's I/O
 * callbacks. A callback registered while they run (a UDP flow's batched
 * write that the mux must then flush) runs in the same pass, not a turn
 * later. Used by the mux (one socket write per turn) and the UDP datagram
 * writers (one framed write per flow per turn).
 */
let queue: Array<() => void> = [];
let scheduled = false;

function runQueue(): void {
  const q = queue;
  let i = 0;
  try {
    // (q grows while it runs: the length is read each time.)
    for (; i < q.length; i++) q[i]!();
  } finally {
    // A callback threw: the ones after it (another session's flush) still run, in a pass of their own.
    queue = i + 1 < q.length ? q.slice(i + 1) : [];
    scheduled = queue.length > 0;
    if (scheduled) setImmediate(runQueue);
  }
}

/** Runs fn once at the end of this turn (callers keep their own "already due" flag). */
export function atTurnEnd(fn: () => void): void {
  queue.push(fn);
  if (!scheduled) {
    scheduled = true;
    setImmediate(runQueue);
  }
}
