/**
 * The sending half of a UDP flow's stream, used by relay and agent alike:
 * datagrams wait in a bounded drop-oldest queue and are flushed once per
 * event-loop turn as ONE framed write (a burst read from a UDP socket becomes
 * one mux data frame, not one frame and one TLS record per datagram). While
 * the stream holds more than STREAM_BUDGET_BYTES unsent (the peer's window or
 * the tunnel is full) datagrams keep queueing and the oldest are dropped, so
 * memory stays bounded and a slow flow never holds up another flow's stream.
 */
import type { Writable } from 'node:stream';
import { encodeDatagrams } from '../framing/datagram.js';
import { allocBatch } from './batch-slab.js';
import { DropOldestQueue } from './drop-oldest-queue.js';
import { atTurnEnd } from '../util/turn-end.js';

export interface QueueLimits {
  /** Datagrams held per flow and direction. */
  datagrams: number;
  /** Payload bytes held per flow and direction. */
  bytes: number;
}

/** Largest single write (then the next turn continues). */
const MAX_BATCH_BYTES = 256 * 1024;
/**
 * Unsent bytes a stream may hold before the writer waits for 'drain'. Not
 * write()'s own answer: that is false above the stream's 16 KiB high-water
 * mark, i.e. after nearly every batch of a busy flow, and waiting for 'drain'
 * each time costs a listener and a turn while the mux has already sent it all.
 * Per flow the stream then holds at most this plus one batch beyond the queue.
 */
export const STREAM_BUDGET_BYTES = 64 * 1024;

/** The stream a writer writes to; a mux stream also tells whether a write would leave at once. */
export type DatagramSink = Writable & { sendableNow?(bytes: number): boolean };

export class DatagramWriter {
  readonly queue: DropOldestQueue;
  private stream: DatagramSink | null = null;
  private waitingDrain = false;
  private isDue = false;
  private closed = false;
  /** Datagrams written to the stream. */
  written = 0;
  /** Stream writes made (one per batch). */
  writes = 0;

  /** `onDrop(n)` is told whenever the queue had to drop n datagrams. */
  constructor(
    limits: QueueLimits,
    private readonly onDrop: (n: number) => void = () => undefined,
  ) {
    this.queue = new DropOldestQueue(limits.datagrams, limits.bytes);
  }

  /** Datagrams dropped (queue overflow) so far. */
  get dropped(): number {
    return this.queue.dropped;
  }

  /** Starts writing to `stream` (datagrams pushed before wait in the queue). */
  attach(stream: DatagramSink): void {
    this.stream = stream;
    this.schedule();
  }

  push(datagram: Buffer): void {
    if (this.closed) return;
    const n = this.queue.push(datagram);
    if (n > 0) this.onDrop(n);
    this.schedule();
  }

  /** Drops whatever is queued and stops writing. */
  close(): void {
    this.closed = true;
    this.queue.clear();
    this.stream = null;
  }

  private schedule(): void {
    if (this.isDue || this.waitingDrain || this.stream === null) return;
    this.isDue = true;
    atTurnEnd(this.flush);
  }

  /** The turn's flush (one per writer that queued something this turn). */
  private readonly flush = (): void => {
    this.isDue = false;
    const stream = this.stream;
    if (stream === null || this.closed || this.waitingDrain) return;
    if (stream.destroyed || stream.writableEnded) {
      this.queue.clear();
      return;
    }
    while (this.queue.length > 0) {
      if (stream.writableLength >= STREAM_BUDGET_BYTES && stream.writableNeedDrain) {
        this.waitingDrain = true;
        stream.once('drain', this.onDrain);
        return;
      }
      const batch = this.queue.take(MAX_BATCH_BYTES);
      this.written += batch.length;
      this.writes++;
      stream.write(encodeDatagrams(batch, (n) => (stream.sendableNow?.(n) === true ? allocBatch(n) : Buffer.allocUnsafe(n))));
    }
  };

  private readonly onDrain = (): void => {
    this.waitingDrain = false;
    if (this.queue.length > 0) this.schedule();
  };
}
