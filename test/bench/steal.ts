// CPU time the hypervisor gave to other guests ("steal", /proc/stat): on a
// shared VM a run with a lot of it measures the neighbours, not Portico.
import { readFileSync } from 'node:fs';

export interface CpuTimes {
  steal: number;
  total: number;
}

/** The machine's aggregate CPU times in clock ticks, or null off Linux. */
export function cpuTimes(): CpuTimes | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    if (f.length < 8 || f.some((x) => !Number.isFinite(x))) return null;
    // user nice system idle iowait irq softirq steal [guest guest_nice: already inside user/nice]
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { steal: f[7]!, total };
  } catch {
    return null;
  }
}

/** Percent of all CPU time between two readings that was stolen, or null. */
export function stealPercent(a: CpuTimes | null, b: CpuTimes | null): number | null {
  if (a === null || b === null || b.total <= a.total) return null;
  return (100 * (b.steal - a.steal)) / (b.total - a.total);
}
