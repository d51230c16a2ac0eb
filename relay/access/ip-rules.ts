/**
 * IP rules: allowlists (`ip_whitelist`, the proxy's `allowedIps`) and a
 * blocklist (`blocked_ips`), IPv4/IPv6 addresses or CIDR blocks, compiled once
 * per route/mapping and matched against the real peer address of the socket
 * (never X-Forwarded-For). No I/O.
 *
 * Semantics: an address is refused when it is in any blocklist entry, or when
 * any non-empty allowlist (server-wide, per mapping, proxy `allowedIps`) does
 * not contain it. Every allowlist must pass (AND): a mapping list narrows the
 * server list, it never widens it. Empty lists mean "no rule".
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d), as clients and rules, are
 * treated as the IPv4 address.
 */
import ipaddr from 'ipaddr.js';

interface V4Net {
  base: number;
  mask: number;
}
interface V6Net {
  net: ipaddr.IPv6;
  bits: number;
}

/** One compiled list. */
export interface IpList {
  v4: V4Net[];
  v6: V6Net[];
  /** Entries as given (canonical text), for messages. */
  size: number;
}

/** Where an allowlist came from; shown in the refusal message. */
export type ListScope = 'server' | 'mapping' | 'proxy';

export interface IpPolicy {
  allow: Array<{ scope: ListScope; list: IpList }>;
  block: IpList | null;
}

export type IpVerdict = { ok: true } | { ok: false; reason: 'blocked' | 'not_allowed'; scope: ListScope | 'blocklist' };

const OK: IpVerdict = { ok: true };

function v4ToInt(octets: number[]): number {
  return ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
}

function maskOf(bits: number): number {
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}

/**
 * Compiles address/CIDR strings; returns the list and the entries it could not
 * parse (the API validates lists, so these only come from hand-edited stores).
 */
export function compileIpList(entries: readonly string[] | undefined | null): { list: IpList | null; bad: string[] } {
  const bad: string[] = [];
  if (!entries || entries.length === 0) return { list: null, bad };
  const list: IpList = { v4: [], v6: [], size: 0 };
  for (const raw of entries) {
    if (typeof raw !== 'string') {
      bad.push(String(raw));
      continue;
    }
    try {
      let addr: ipaddr.IPv4 | ipaddr.IPv6;
      let bits: number;
      if (raw.includes('/')) [addr, bits] = ipaddr.parseCIDR(raw);
      else {
        addr = ipaddr.parse(raw);
        bits = addr.kind() === 'ipv4' ? 32 : 128;
      }
      if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
        addr = (addr as ipaddr.IPv6).toIPv4Address();
        bits -= 96;
      }
      if (addr.kind() === 'ipv4') {
        const mask = maskOf(bits);
        list.v4.push({ base: (v4ToInt((addr as ipaddr.IPv4).octets) & mask) >>> 0, mask });
      } else list.v6.push({ net: addr as ipaddr.IPv6, bits });
      list.size++;
    } catch {
      bad.push(raw);
    }
  }
  return { list: list.size > 0 ? list : null, bad };
}

/** A parsed client address; parse once per connection, match against several lists. */
export type ParsedIp = { v4: number; v6: null } | { v4: null; v6: ipaddr.IPv6 } | null;

export function parseIp(ip: string): ParsedIp {
  try {
    const a = ipaddr.process(ip); // unwraps ::ffff:a.b.c.d
    return a.kind() === 'ipv4' ? { v4: v4ToInt((a as ipaddr.IPv4).octets), v6: null } : { v4: null, v6: a as ipaddr.IPv6 };
  } catch {
    return null;
  }
}

export function listHas(list: IpList, ip: ParsedIp): boolean {
  if (ip === null) return false;
  if (ip.v4 !== null) {
    for (const n of list.v4) if (((ip.v4 & n.mask) >>> 0) === n.base) return true;
    return false;
  }
  for (const n of list.v6) if (ip.v6.match(n.net, n.bits)) return true;
  return false;
}

/** Builds a policy; null when no list has an entry (then nothing is checked). */
export function compileIpPolicy(
  allow: Array<{ scope: ListScope; entries: readonly string[] | undefined | null }>,
  block: Array<readonly string[] | undefined | null>,
  onBad?: (entry: string) => void,
): IpPolicy | null {
  const policy: IpPolicy = { allow: [], block: null };
  for (const a of allow) {
    const { list, bad } = compileIpList(a.entries);
    for (const b of bad) onBad?.(b);
    if (list) policy.allow.push({ scope: a.scope, list });
  }
  const blocked = block.flatMap((b) => (b ? [...b] : []));
  const { list, bad } = compileIpList(blocked);
  for (const b of bad) onBad?.(b);
  policy.block = list;
  return policy.allow.length === 0 && policy.block === null ? null : policy;
}

/** Checks a client address; an unparseable address is refused by any rule. */
export function checkIp(policy: IpPolicy, ip: string): IpVerdict {
  const parsed = parseIp(ip);
  if (policy.block !== null && (parsed === null || listHas(policy.block, parsed))) return { ok: false, reason: 'blocked', scope: 'blocklist' };
  for (const a of policy.allow) if (!listHas(a.list, parsed)) return { ok: false, reason: 'not_allowed', scope: a.scope };
  return OK;
}
