// iperf3 wrapper: a server on the target address, and `iperf3 -c … -J` runs
// whose JSON gives the receiver-side aggregate and per-stream rates.
import { spawnSync } from 'node:child_process';
import { assertLoopback, spawnTracked, stopChild, waitForPort, which, type Spawned } from '../peers/proc.js';
import type { ThroughputResult } from './throughput.js';

export function iperf3Path(): string | null {
  return which('iperf3');
}

export function iperf3Version(): string {
  const p = iperf3Path();
  if (!p) return 'absent';
  return spawnSync(p, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0]?.trim() ?? '?';
}

export async function startIperf3Server(host: string, port: number): Promise<{ stop(): Promise<void>; proc: Spawned }> {
  assertLoopback(host);
  const bin = iperf3Path();
  if (!bin) throw new Error('iperf3 not installed');
  // --idle-timeout: an abandoned test cannot wedge the server for long.
  const proc = spawnTracked(bin, ['-s', '-B', host, '-p', String(port), '--idle-timeout', '30']);
  await waitForPort(host, port, 5000, `iperf3 -s: ${proc.output()}`);
  return { proc, stop: () => stopChild(proc) };
}

interface IperfJson {
  error?: string;
  end?: {
    sum_received?: { bits_per_second?: number; seconds?: number };
    streams?: { receiver?: { bits_per_second?: number } }[];
  };
}

/**
 * The receiver-side result of `iperf3 -c … -J`: its aggregate and per-stream
 * rates in bytes per second. Anything else — no JSON, iperf3's own `error`,
 * a run without a receiver sum — is an error naming what iperf3 printed.
 */
export function parseIperf3Json(out: string, code: number | null, output: string, seconds: number): ThroughputResult {
  let j: IperfJson;
  try {
    j = JSON.parse(out.slice(out.indexOf('{'))) as IperfJson;
  } catch {
    throw new Error(`iperf3 exited ${code}, unparsable output: ${output.slice(0, 300).replace(/\s+/g, ' ')}`);
  }
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  const bps = j.end?.sum_received?.bits_per_second;
  if (typeof bps !== 'number') throw new Error(`iperf3 exited ${code} without a result`);
  const perStream = (j.end?.streams ?? []).map((s) => (s.receiver?.bits_per_second ?? 0) / 8);
  return { bytesPerSec: bps / 8, perStream, seconds: j.end?.sum_received?.seconds ?? seconds, tool: 'iperf3' };
}

export async function runIperf3(opts: {
  host: string;
  port: number;
  streams: number;
  seconds: number;
  reverse?: boolean;
  omitSeconds?: number;
}): Promise<ThroughputResult> {
  assertLoopback(opts.host);
  const bin = iperf3Path();
  if (!bin) throw new Error('iperf3 not installed');
  const args = [
    '-c', opts.host,
    '-p', String(opts.port),
    '-P', String(Math.min(Math.max(1, opts.streams), 128)),
    '-t', String(opts.seconds),
    '-J',
    '--connect-timeout', '5000',
  ];
  if (opts.omitSeconds) args.push('-O', String(opts.omitSeconds));
  if (opts.reverse) args.push('-R', '--rcv-timeout', '15000');
  const p = spawnTracked(bin, args);
  const limit = (opts.seconds + (opts.omitSeconds ?? 0) + 30) * 1000;
  const timer = setTimeout(() => p.kill(), limit);
  const code = await p.exited;
  clearTimeout(timer);
  return parseIperf3Json(p.stdout(), code, p.output(), opts.seconds);
}

