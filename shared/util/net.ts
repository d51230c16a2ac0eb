/** Address helpers shared by relay and agent. */
import net from 'node:net';
import os from 'node:os';

/** Strips the IPv4-mapped IPv6 prefix (::ffff:1.2.3.4 -> 1.2.3.4). */
export function normalizeAddress(addr: string | undefined): string {
  if (!addr) return '';
  return addr.startsWith('::ffff:') && net.isIPv4(addr.slice(7)) ? addr.slice(7) : addr;
}

export function isLoopback(addr: string): boolean {
  const a = normalizeAddress(addr);
  return a.startsWith('127.') || a === '::1' || a === 'localhost';
}

let localCache: { at: number; set: Set<string> } | null = null;

/** True when addr is one of this host's addresses (loopback or an interface). */
export function isLocalAddress(addr: string): boolean {
  const a = normalizeAddress(addr);
  if (isLoopback(a)) return true;
  const now = Date.now();
  if (!localCache || now - localCache.at > 10_000) {
    const set = new Set<string>();
    for (const list of Object.values(os.networkInterfaces())) for (const i of list ?? []) set.add(normalizeAddress(i.address));
    localCache = { at: now, set };
  }
  return localCache.set.has(a);
}

/** Whether a listener bound to `bindHost` accepts connections addressed to `target`. */
export function bindCovers(bindHost: string, target: string): boolean {
  const b = normalizeAddress(bindHost);
  const t = normalizeAddress(target);
  if (b === '0.0.0.0' || b === '::' || b === '') return isLocalAddress(t);
  if (t === 'localhost') return isLoopback(b);
  return b === t;
}
