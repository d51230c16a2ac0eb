/** iperf3 -u as a real UDP peer: server start-up and a client run parsed from its JSON (tests and the UDP bench). */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';

const SECONDS = 5;
const BLKSIZE = 1460;

export function iperf3(): string | null {
  const r = spawnSync('iperf3', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? 'iperf3' : null;
}

export interface UdpIperfResult {
  offeredMbps: number;
  /** Datagram payload size, bytes. */
  blksize: number;
  /** What the receiver got, Mbit/s. */
  receivedMbps: number;
  lostPercent: number;
  lostPackets: number;
  packets: number;
  jitterMs: number;
}

interface IperfUdpJson {
  error?: string;
  end?: {
    sum?: { bits_per_second?: number; lost_percent?: number; lost_packets?: number; packets?: number; jitter_ms?: number };
    sum_received?: { bits_per_second?: number; lost_percent?: number; lost_packets?: number; packets?: number; jitter_ms?: number };
  };
}

/** Runs iperf3 -u against host:port at `mbps` offered; the receiver's view of the run. */
export async function runIperf3Udp(host: string, port: number, mbps: number, opts: { reverse?: boolean; seconds?: number; blksize?: number; socketBuffer?: string } = {}): Promise<UdpIperfResult> {
  const secs = opts.seconds ?? SECONDS;
  const blksize = opts.blksize ?? BLKSIZE;
  const args = ['-c', host, '-p', String(port), '-u', '-b', `${mbps}M`, '-l', String(blksize), '-t', String(secs), '-J', '--connect-timeout', '5000'];
  if (opts.reverse) args.push('-R');
  // -w: socket buffers of both iperf3 ends (the app's receive buffer absorbs the tunnel's bursts).
  if (opts.socketBuffer) args.push('-w', opts.socketBuffer);
  const child = spawn('iperf3', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), (secs + 30) * 1000);
  await new Promise((r) => child.once('exit', r));
  clearTimeout(timer);
  const j = JSON.parse(out.slice(out.indexOf('{'))) as IperfUdpJson;
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  // iperf3 >= 3.13 splits sum_sent / sum_received; 3.12 reports the receiver's loss in `sum`.
  const s = j.end?.sum_received ?? j.end?.sum;
  if (!s || typeof s.bits_per_second !== 'number') throw new Error(`iperf3 gave no UDP summary: ${out.slice(0, 300)}`);
  const packets = s.packets ?? 0;
  const lost = s.lost_packets ?? 0;
  return {
    offeredMbps: mbps,
    blksize,
    receivedMbps: ((s.bits_per_second * (packets - lost)) / Math.max(1, packets)) / 1e6,
    lostPercent: s.lost_percent ?? 0,
    lostPackets: lost,
    packets,
    jitterMs: s.jitter_ms ?? 0,
  };
}

export async function startIperf3Server(host: string, port: number): Promise<ChildProcess> {
  const child = spawn('iperf3', ['-s', '-B', host, '-p', String(port), '--idle-timeout', '30'], { stdio: 'ignore' });
  const deadline = Date.now() + 5_000;
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const c = net.connect({ host, port }, () => {
        c.destroy();
        res(true);
      });
      c.on('error', () => res(false));
    });
    if (ok) break;
    if (Date.now() > deadline) throw new Error('iperf3 -s did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  // The readiness probe above counts as a (failed) test for iperf3; give it a moment to reset.
  await new Promise((r) => setTimeout(r, 300));
  return child;
}

export function formatIperf(r: UdpIperfResult): string {
  return `${r.offeredMbps} Mbit/s offered: ${r.receivedMbps.toFixed(1)} Mbit/s received, loss ${r.lostPercent.toFixed(2)} % (${r.lostPackets}/${r.packets}), jitter ${r.jitterMs.toFixed(3)} ms`;
}

