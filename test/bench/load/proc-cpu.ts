// CPU time of a process (and optionally its direct children, e.g. nginx's
// workers) from /proc/<pid>/stat: utime + stime. Benches read it before and
// after a fixed load run to get CPU µs per request, which is steadier than
// req/s on a shared, noisy machine.
import { readdirSync, readFileSync } from 'node:fs';

const TICKS = 100; // USER_HZ on Linux

/** utime + stime of one process in seconds; NaN when it cannot be read. */
export function cpuSeconds(pid: number | undefined): number {
  if (!pid) return Number.NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICKS;
  } catch {
    return Number.NaN;
  }
}

/** The direct children of pid (Linux /proc/<pid>/task/<pid>/children). */
export function childPids(pid: number | undefined): number[] {
  if (!pid) return [];
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** CPU seconds of pid plus its direct children. */
export function cpuSecondsWithChildren(pid: number | undefined): number {
  let s = cpuSeconds(pid);
  for (const c of childPids(pid)) {
    const v = cpuSeconds(c);
    if (Number.isFinite(v)) s += v;
  }
  return s;
}

/** Snapshot several processes now; call the result to get CPU seconds used since, per name. */
export function cpuMeter(pids: Record<string, () => number>): () => Record<string, number> {
  const before = Object.fromEntries(Object.entries(pids).map(([k, f]) => [k, f()]));
  return () => Object.fromEntries(Object.entries(pids).map(([k, f]) => [k, f() - before[k]!]));
}

/** Context switches (voluntary + involuntary) of a process, all its threads; NaN when unknown. */
export function contextSwitches(pid: number | undefined): number {
  if (!pid) return Number.NaN;
  let sum = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const st = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      for (const m of st.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)/gm)) sum += Number(m[1]);
    }
  } catch {
    return Number.NaN;
  }
  return sum;
}

/** Pids of every process with this command name (e.g. all sshd processes). */
export function pidsOfComm(comm: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === comm) out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}
