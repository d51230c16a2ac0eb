/**
 * Buffers with free bytes in front ("headroom"), offered by their owner so a
 * framing layer can write its header there and send header + payload as one
 * buffer: a TLS socket copies a multi-buffer write into one before
 * encrypting, and a small payload would otherwise be copied into a frame.
 *
 * The owner offers a buffer with the function that gives it back; the framer
 * claims it (once: claiming forgets the offer) and calls that function when
 * the socket has taken the bytes (its write callback). Owners: socket
 * readers (socket-reader.ts) and UDP batches (udp/batch-slab.ts).
 */

/** Free bytes kept in front of an offered buffer: room for a yamux header (12) and more. */
export const HEADROOM = 16;

/** Called once the bytes of a claimed buffer have been written. */
export type ReleaseFn = (b: Buffer) => void;

const offered = new WeakMap<Buffer, ReleaseFn>();

/** Declares the HEADROOM bytes before `b` free; `release(b)` is called when a framer that claimed it is done with it. */
export function offerHeadroom(b: Buffer, release: ReleaseFn): void {
  offered.set(b, release);
}

/** The release function if the HEADROOM bytes before `b` are free for the caller (once), else undefined. */
export function claimHeadroom(b: Buffer): ReleaseFn | undefined {
  const release = offered.get(b);
  if (release !== undefined) offered.delete(b);
  return release;
}
