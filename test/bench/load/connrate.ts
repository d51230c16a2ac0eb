// New-connection rate: C workers each loop { connect, write N bytes, read the
// N-byte echo, half-close, wait for the peer's close }, for a bounded time and
// count. Counts only complete, correct round trips (every echoed byte is
// checked; a short, long or altered echo is an error).
import net from 'node:net';
import { assertLoopback } from '../peers/proc.js';
import { Histogram } from './histogram.js';
import { isFilledWith } from './latency.js';

/** The byte every payload is filled with; the echo must be the same. */
const FILL = 0x63;

export interface ConnRateResult {
  perSec: number;
  completed: number;
  errors: number;
  concurrency: number;
  size: number;
  p50ms: number;
  p99ms: number;
  firstError?: string;
}

function oneConn(host: string, port: number, payload: Buffer, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, noDelay: true });
    let got = 0;
    let settled = false;
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      s.destroy();
      reject(e);
    };
    s.setTimeout(timeoutMs, () => fail(new Error('timeout')));
    s.once('error', fail);
    s.once('connect', () => s.write(payload));
    s.on('data', (d: Buffer) => {
      if (!isFilledWith(d, FILL)) return fail(new Error(`echo byte mismatch after ${got} bytes`));
      got += d.length;
      if (got === payload.length) s.end();
      else if (got > payload.length) fail(new Error('too many bytes'));
    });
    s.once('close', () => {
      if (settled) return;
      settled = true;
      if (got === payload.length) resolve();
      else reject(new Error(`short echo: ${got}/${payload.length} bytes`));
    });
  });
}

export async function connRate(opts: {
  host: string;
  port: number;
  seconds: number;
  concurrency?: number;
  size?: number;
  maxCount?: number;
  /** Completions in this first stretch are not counted (JIT, caches, pools). */
  warmupSeconds?: number;
}): Promise<ConnRateResult> {
  assertLoopback(opts.host);
  const c = opts.concurrency ?? 16;
  const size = opts.size ?? 4096;
  const maxCount = opts.maxCount ?? 1_000_000;
  const payload = Buffer.alloc(size, FILL);
  const hist = new Histogram();
  let completed = 0;
  let errors = 0;
  /** Connections started, warm-up included: the loop's hard bound. */
  let attempts = 0;
  let firstError: string | undefined;
  const warm = opts.warmupSeconds ?? 0.5;
  let t0 = process.hrtime.bigint();
  const endAt = Date.now() + (warm + opts.seconds) * 1000;
  let measuring = warm <= 0;
  const warmTimer =
    warm > 0
      ? setTimeout(() => {
          measuring = true;
          completed = 0;
          errors = 0;
          hist.reset();
          t0 = process.hrtime.bigint();
        }, warm * 1000)
      : undefined;
  const worker = async (): Promise<void> => {
    while (Date.now() < endAt && attempts < maxCount && !(errors > 1000 && errors > completed)) {
      attempts++; // claimed before the await, so concurrent workers cannot overshoot maxCount
      const a = process.hrtime.bigint();
      try {
        await oneConn(opts.host, opts.port, payload, 5000);
        completed++;
        hist.record(Number(process.hrtime.bigint() - a));
      } catch (e) {
        errors++;
        firstError ??= (e as Error).message;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  };
  await Promise.all(Array.from({ length: c }, () => worker()));
  clearTimeout(warmTimer);
  if (!measuring) throw new Error('connection loop ended during warm-up');
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const r: ConnRateResult = {
    perSec: completed / secs,
    completed,
    errors,
    concurrency: c,
    size,
    p50ms: hist.percentile(50) / 1e6,
    p99ms: hist.percentile(99) / 1e6,
  };
  if (firstError !== undefined) r.firstError = firstError;
  return r;
}
