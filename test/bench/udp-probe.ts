// Where UDP datagrams are lost and what they cost, read from /proc (Linux):
// CPU seconds of a process (re-exported from load/proc-cpu.ts), the kernel's UDP counters
// (/proc/net/snmp) and each socket's drop counter (/proc/net/udp{,6}).
import { readFileSync } from 'node:fs';

export { cpuSeconds } from './load/proc-cpu.js';

/** The Udp: line of /proc/net/snmp as name -> value. */
export function udpSnmp(): Record<string, number> {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
    const names = lines[0]!.split(/\s+/).slice(1);
    const values = lines[1]!.split(/\s+/).slice(1).map(Number);
    return Object.fromEntries(names.map((n, i) => [n, values[i] ?? 0]));
  } catch {
    return {};
  }
}

export interface UdpSocketRow {
  /** "a.b.c.d:port" (IPv4 only; v6 rows keep the hex). */
  local: string;
  remote: string;
  drops: number;
  inode: string;
}

function addr(hex: string): string {
  const [ip, port] = hex.split(':');
  if (ip!.length !== 8) return `${ip}:${parseInt(port!, 16)}`;
  const n = parseInt(ip!, 16);
  // Little-endian on x86: the first octet is the low byte.
  return `${n & 255}.${(n >>> 8) & 255}.${(n >>> 16) & 255}.${n >>> 24}:${parseInt(port!, 16)}`;
}

/** Every UDP socket of this network namespace with its drop counter. */
export function udpSockets(): UdpSocketRow[] {
  const rows: UdpSocketRow[] = [];
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 13) continue;
      rows.push({ local: addr(f[1]!), remote: addr(f[2]!), inode: f[9]!, drops: Number(f[12]) });
    }
  }
  return rows;
}

/** Drops of the sockets `pick` selects, keyed by inode (sockets may come and go between reads). */
export function dropsBy(pick: (r: UdpSocketRow) => boolean, rows = udpSockets()): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of rows) if (pick(r)) m.set(r.inode, r.drops);
  return m;
}

/** Drops added between two dropsBy() reads (new sockets count from 0). */
export function dropsDelta(before: Map<string, number>, after: Map<string, number>): number {
  let d = 0;
  for (const [inode, n] of after) d += n - (before.get(inode) ?? 0);
  return d;
}

/** Where a flow's datagrams were dropped by the kernel, by socket role. */
export interface DropReport {
  /** The relay's public socket (receive buffer full: the relay read too slowly). */
  relay: number;
  /** The agent's flow sockets (replies from the app). */
  agent: number;
  /** The app's socket behind the agent (receive buffer full: bursts from the agent). */
  app: number;
  /** The client's socket (replies). */
  client: number;
}

/**
 * Samples the drop counters of the sockets around one public port every
 * 100 ms while a run lasts (a socket's counter vanishes when it closes, e.g.
 * iperf3's per-test socket), keeping each socket's highest value.
 * Roles: the relay's socket is bound to `publicPort`, the app's to
 * `appHost:publicPort`, the agent's are connected to it, the client's are
 * connected to the public port.
 */
export function startDropSampler(publicPort: number, appHost: string): { stop(): DropReport } {
  const base = new Map<string, number>();
  for (const r of udpSockets()) base.set(r.inode, r.drops);
  const peak = new Map<string, { role: keyof DropReport; drops: number }>();
  const sample = () => {
    for (const r of udpSockets()) {
      const role = roleOf(r, publicPort, appHost);
      if (!role) continue;
      const d = r.drops - (base.get(r.inode) ?? 0);
      const p = peak.get(r.inode);
      if (!p || d > p.drops) peak.set(r.inode, { role, drops: d });
    }
  };
  const timer = setInterval(sample, 100);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const rep: DropReport = { relay: 0, agent: 0, app: 0, client: 0 };
      for (const p of peak.values()) rep[p.role] += p.drops;
      return rep;
    },
  };
}

function roleOf(r: UdpSocketRow, port: number, appHost: string): keyof DropReport | null {
  const p = `:${port}`;
  if (r.local === `${appHost}${p}`) return 'app';
  if (r.remote === `${appHost}${p}`) return 'agent';
  if (r.local.endsWith(p) && r.remote.startsWith('0.0.0.0:') ) return 'relay';
  if (r.remote.endsWith(p)) return 'client';
  return null;
}
