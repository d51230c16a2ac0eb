// Paced request/response latency: fixed-size requests on one persistent,
// pipelined connection to an echo server, sent on a fixed schedule (open
// loop: a slow response does not delay the next request), timed from the
// write to the last byte of its echo. Percentiles from Histogram. A reply
// byte that is not the request's (a broken path) or a close before every
// request was answered fails the measurement instead of yielding percentiles
// of a partial run.
import net from 'node:net';
import { assertLoopback } from '../peers/proc.js';
import { Histogram } from './histogram.js';

/** The byte every request is filled with; the echo must be the same. */
const FILL = 0x71;

/** True if every byte of `b` is `v`. */
export function isFilledWith(b: Buffer, v: number): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== v) return false;
  return true;
}

export interface LatencyResult {
  rate: number;
  size: number;
  sent: number;
  completed: number;
  p50us: number;
  p90us: number;
  p99us: number;
  p999us: number;
  maxus: number;
  meanus: number;
  achievedRate: number;
}

export async function pacedLatency(opts: {
  host: string;
  port: number;
  rate?: number;
  size?: number;
  seconds: number;
  warmupSeconds?: number;
}): Promise<LatencyResult> {
  assertLoopback(opts.host);
  const rate = opts.rate ?? 1000;
  const size = opts.size ?? 1024;
  const warm = opts.warmupSeconds ?? 0.3;
  const total = Math.min(Math.ceil(rate * (opts.seconds + warm)), 10_000_000);
  const warmCount = Math.ceil(rate * warm);
  const req = Buffer.alloc(size, FILL);
  const sentAt = new Float64Array(total);
  const hist = new Histogram();

  const s = net.connect({ host: opts.host, port: opts.port, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
    s.setTimeout(10_000, () => s.destroy(new Error('connect timeout')));
  });
  s.setTimeout(0);
  let sent = 0;
  let completed = 0;
  let rxBytes = 0;
  let error: Error | null = null;
  const now = (): number => Number(process.hrtime.bigint()); // ns
  let finish: () => void = () => {};
  const done = new Promise<void>((r) => (finish = r));
  s.on('data', (d: Buffer) => {
    const t = now();
    if (error === null && !isFilledWith(d, FILL)) {
      error = new Error(`latency: echo byte mismatch after ${rxBytes} bytes`);
      finish();
      return;
    }
    rxBytes += d.length;
    while (completed < sent && rxBytes >= (completed + 1) * size) {
      if (completed >= warmCount) hist.record(t - (sentAt[completed] ?? t));
      completed++;
    }
    if (completed >= total) finish();
  });
  s.on('error', (e) => {
    error = e;
    finish();
  });
  s.on('close', () => {
    if (error === null && completed < total) error = new Error(`latency: connection closed after ${completed} of ${total} responses`);
    finish();
  });

  const start = now();
  const tick = (): void => {
    const due = Math.min(total, Math.floor(((now() - start) / 1e9) * rate) + 1);
    let burst = 0;
    while (sent < due && burst < 64) {
      sentAt[sent] = now();
      s.write(req);
      sent++;
      burst++;
    }
    if (sent >= total) clearInterval(timer);
  };
  const timer = setInterval(tick, 1);
  tick();
  const grace = setTimeout(() => {
    error ??= new Error(`latency: ${total - completed} of ${total} responses missing ${opts.seconds + warm + 5} s after the start`);
    finish();
  }, (opts.seconds + warm) * 1000 + 5000);
  await done;
  clearInterval(timer);
  clearTimeout(grace);
  const elapsed = (now() - start) / 1e9;
  s.destroy();
  if (error !== null) throw error as Error;
  const us = (ns: number): number => ns / 1000;
  return {
    rate,
    size,
    sent,
    completed,
    p50us: us(hist.percentile(50)),
    p90us: us(hist.percentile(90)),
    p99us: us(hist.percentile(99)),
    p999us: us(hist.percentile(99.9)),
    maxus: us(hist.max),
    meanus: us(hist.mean),
    achievedRate: completed / elapsed,
  };
}
