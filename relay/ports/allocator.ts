/**
 * Chooses the block of public ports a new server gets: the first contiguous
 * run in `ports.range` that is not reserved, not held by another server and
 * free on this host; a scattered set only when no run is left.
 */
import { createServer } from 'node:net';

import { PorticoError } from '../../shared/errors.js';

export interface AllocateBlockArgs {
  range: { start: number; end: number };
  count: number;
  /** Never handed out (config `ports.reserved`, the relay's own listeners). */
  reserved: Iterable<number>;
  /** Already allocated to other servers. */
  taken: Iterable<number>;
  /** Address the public listeners bind to; used by the default `isFree`. */
  bindHost: string;
  /** Whether the host lets us use the port (default: {@link portIsFree} on bindHost). */
  isFree?: (port: number) => Promise<boolean>;
}

/**
 * True when a TCP listener can bind `host:port` right now (the probe listener
 * is closed before returning). False for "in use" and "permission denied";
 * other errors (e.g. `host` is not an address of this machine) are thrown,
 * since every port would fail the same way.
 */
export function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolve(false);
      else reject(err);
    });
    srv.listen({ host, port, exclusive: true }, () => {
      srv.close(() => resolve(true));
    });
  });
}

/** Allocates `count` ports, ascending; throws POOL_EXHAUSTED when the range cannot supply them. */
export async function allocateBlock(args: AllocateBlockArgs): Promise<number[]> {
  const { range, count, bindHost } = args;
  if (!Number.isInteger(count) || count < 1) {
    throw new PorticoError('VALIDATION_FAILED', `port count must be a positive integer, got ${count}`, { field: 'ports', requested: count });
  }
  if (!Number.isInteger(range.start) || !Number.isInteger(range.end) || range.start < 1 || range.end > 65535 || range.start > range.end) {
    throw new PorticoError('CONFIG_INVALID', `ports.range ${range.start}-${range.end} is not a valid port range`, { key: 'ports.range' });
  }
  const isFree = args.isFree ?? ((p: number) => portIsFree(bindHost, p));
  const unusable = new Set<number>(args.reserved);
  for (const p of args.taken) unusable.add(p);

  // One pass over the range: every candidate is probed at most once, and the
  // free ones are remembered for the scattered fallback.
  const free: number[] = [];
  let run: number[] = [];
  for (let p = range.start; p <= range.end; p++) {
    if (unusable.has(p) || !(await isFree(p))) {
      run = [];
      continue;
    }
    free.push(p);
    run.push(p);
    if (run.length === count) return run;
  }
  if (free.length >= count) return free.slice(0, count);
  throw new PorticoError(
    'POOL_EXHAUSTED',
    `no ${count} free public ports left in ports.range ${range.start}-${range.end} (${free.length} available)`,
    { requested: count, available: free.length },
  );
}
