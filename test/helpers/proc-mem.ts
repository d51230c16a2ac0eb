// Memory of a process as the kernel reports it, for the memory tests and benches.
import { readFileSync } from 'node:fs';

/** Resident set size of a process, bytes (0 when it is gone). */
export function rss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}
