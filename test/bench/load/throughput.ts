// Node throughput generators (used when iperf3 is missing, or on request).
// download(): N sockets read from a `source` server; bytes are counted at the
// receiver (no hashing), only inside the measurement window after warm-up.
// upload(): N sockets write to a `sink` server, which reports the byte count
// it received when the client half-closes; rate = bytes / time to that reply.
import net from 'node:net';
import { assertLoopback } from '../peers/proc.js';

export interface ThroughputResult {
  /** Aggregate, bytes per second. */
  bytesPerSec: number;
  /** Per stream, bytes per second. */
  perStream: number[];
  seconds: number;
  tool: string;
}

const WRITE_CHUNK = Buffer.alloc(128 * 1024, 0x61);

export async function download(opts: {
  host: string;
  port: number;
  streams: number;
  seconds: number;
  warmupSeconds?: number;
}): Promise<ThroughputResult> {
  assertLoopback(opts.host);
  const warm = (opts.warmupSeconds ?? 0.5) * 1000;
  const n = Math.min(Math.max(1, opts.streams), 512);
  const counted = new Array<number>(n).fill(0);
  const sockets: net.Socket[] = [];
  let measuring = false;
  let failure: Error | null = null;
  await Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        new Promise<void>((resolve, reject) => {
          const s = net.connect({ host: opts.host, port: opts.port, noDelay: true });
          sockets.push(s);
          s.setTimeout(15_000, () => s.destroy(new Error('connect/read timeout')));
          s.once('connect', () => resolve());
          s.once('error', (e) => {
            failure ??= e;
            reject(e);
          });
          s.on('data', (d: Buffer) => {
            if (measuring) counted[i] = (counted[i] ?? 0) + d.length;
          });
        }),
    ),
  ).catch((e: unknown) => {
    for (const s of sockets) s.destroy();
    throw e;
  });
  await new Promise((r) => setTimeout(r, warm));
  measuring = true;
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, opts.seconds * 1000));
  measuring = false;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  for (const s of sockets) s.destroy();
  if (failure) throw failure;
  const perStream = counted.map((b) => b / secs);
  return { bytesPerSec: perStream.reduce((a, b) => a + b, 0), perStream, seconds: secs, tool: 'node-download' };
}

export async function upload(opts: { host: string; port: number; streams: number; seconds: number }): Promise<ThroughputResult> {
  assertLoopback(opts.host);
  const n = Math.min(Math.max(1, opts.streams), 512);
  const t0 = process.hrtime.bigint();
  const endAt = Date.now() + opts.seconds * 1000;
  const results = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<number>((resolve, reject) => {
          const s = net.connect({ host: opts.host, port: opts.port, noDelay: true, allowHalfOpen: true });
          let reply = '';
          const hard = setTimeout(() => s.destroy(new Error('upload timed out')), opts.seconds * 1000 + 20_000);
          s.once('error', (e) => {
            clearTimeout(hard);
            reject(e);
          });
          s.on('data', (d: Buffer) => (reply += d.toString('latin1')));
          s.on('end', () => {
            clearTimeout(hard);
            s.destroy();
            resolve(Number.parseInt(reply, 10));
          });
          const pump = (): void => {
            while (Date.now() < endAt) {
              if (!s.write(WRITE_CHUNK)) return;
            }
            s.end();
          };
          s.on('drain', pump);
          s.once('connect', pump);
        }),
    ),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const perStream = results.map((b) => b / secs);
  return { bytesPerSec: perStream.reduce((a, b) => a + b, 0), perStream, seconds: secs, tool: 'node-upload' };
}
