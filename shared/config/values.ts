/**
 * Parsers for the scalar value kinds used in Portico config files and flags:
 * durations, byte sizes, ports, port ranges and host:port addresses. Each
 * parser takes the raw value (YAML gives strings, numbers, booleans …) and
 * throws a {@link ConfigValueError} whose message says what is wrong with the
 * value only; the config loaders add the key and the file.
 */
import { isIP } from 'node:net';

import type { HostPort } from './types.js';

/** A bad config or flag value; `message` describes the value, not the key. */
export class ConfigValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigValueError';
  }
}

/** Renders a raw value for an error message (strings quoted, objects as JSON). */
export function showValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === undefined) return 'nothing';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;

/**
 * Duration in milliseconds from `500ms`, `60s`, `10m`, `1h`, `1.5s` or a
 * compound like `1h30m`. A bare number is refused: `60` could mean seconds or
 * milliseconds, so the unit is required.
 */
export function parseDuration(value: unknown): number {
  if (typeof value === 'number') {
    throw new ConfigValueError(`${value} has no unit; write it with one of ms, s, m, h (e.g. "${value}s" or "${value}ms")`);
  }
  if (typeof value !== 'string') throw new ConfigValueError(`expected a duration such as "500ms", "60s" or "10m", got ${showValue(value)}`);
  const text = value.trim();
  if (text.length === 0) throw new ConfigValueError('empty duration; use e.g. "500ms", "60s" or "10m"');
  if (/^\d+(\.\d+)?$/.test(text)) {
    throw new ConfigValueError(`"${text}" has no unit; write it with one of ms, s, m, h (e.g. "${text}s" or "${text}ms")`);
  }
  let total = 0;
  let pos = 0;
  DURATION_PART.lastIndex = 0;
  while (pos < text.length) {
    DURATION_PART.lastIndex = pos;
    const m = DURATION_PART.exec(text);
    if (!m) throw new ConfigValueError(`${showValue(value)} is not a duration; use a number with a unit ms, s, m or h, e.g. "500ms", "60s", "10m", "1h30m"`);
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    pos = DURATION_PART.lastIndex;
  }
  if (!Number.isFinite(total) || total > Number.MAX_SAFE_INTEGER) throw new ConfigValueError(`${showValue(value)} is too long a duration`);
  return Math.round(total);
}

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/**
 * Size in bytes from a plain integer (`262144`) or a number with a unit:
 * `256KiB`, `4MiB`, `1GiB` (powers of 1024) or `500KB`, `4MB` (powers of 1000).
 */
export function parseSize(value: unknown): number {
  let n: number;
  if (typeof value === 'number') {
    n = value;
  } else if (typeof value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
    const unit = m ? SIZE_UNITS[m[2]!.toLowerCase() || 'b'] : undefined;
    if (!m || unit === undefined) {
      throw new ConfigValueError(`${showValue(value)} is not a size; use bytes (e.g. 262144) or a unit B, KiB, MiB, GiB, KB, MB, GB (e.g. "256KiB", "4MiB")`);
    }
    n = Number(m[1]) * unit;
  } else {
    throw new ConfigValueError(`expected a size such as "256KiB" or "4MiB", got ${showValue(value)}`);
  }
  if (!Number.isSafeInteger(n) || n < 0) throw new ConfigValueError(`${showValue(value)} is not a whole number of bytes`);
  return n;
}

/** An integer from a YAML number or a decimal string (flags arrive as strings). */
export function parseInteger(value: unknown, opts: { min?: number; max?: number } = {}): number {
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && /^\s*-?\d+\s*$/.test(value)) n = Number(value);
  else throw new ConfigValueError(`expected a whole number, got ${showValue(value)}`);
  if (!Number.isSafeInteger(n)) throw new ConfigValueError(`expected a whole number, got ${showValue(value)}`);
  const { min, max } = opts;
  if (min !== undefined && max !== undefined && (n < min || n > max)) throw new ConfigValueError(`${n} is out of range; allowed ${min}..${max}`);
  if (min !== undefined && n < min) throw new ConfigValueError(`${n} is too small; minimum ${min}`);
  if (max !== undefined && n > max) throw new ConfigValueError(`${n} is too large; maximum ${max}`);
  return n;
}

/** A TCP/UDP port 1..65535 (0 too when `allowZero`, meaning "any free port"). */
export function parsePort(value: unknown, opts: { allowZero?: boolean } = {}): number {
  const min = opts.allowZero ? 0 : 1;
  let n: number;
  try {
    n = parseInteger(value);
  } catch {
    throw new ConfigValueError(`expected a port number ${min}..65535, got ${showValue(value)}`);
  }
  if (n < min || n > 65535) throw new ConfigValueError(`port ${n} is out of range ${min}..65535`);
  return n;
}

/** `true`/`false` (YAML booleans, or the strings true/false/yes/no/1/0 from flags and env). */
export function parseBoolean(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    const v = value.trim().toLowerCase();
    if (['true', 'yes', 'on', '1'].includes(v)) return true;
    if (['false', 'no', 'off', '0'].includes(v)) return false;
  }
  throw new ConfigValueError(`expected true or false, got ${showValue(value)}`);
}

/** A non-empty string (trimmed). */
export function parseString(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean') value = String(value);
  if (typeof value !== 'string') throw new ConfigValueError(`expected a string, got ${showValue(value)}`);
  const s = value.trim();
  if (s.length === 0) throw new ConfigValueError('must not be empty');
  return s;
}

/** A port range `start-end` (or a single port) inside 1..65535, start <= end. */
export function parsePortRange(value: unknown): { start: number; end: number } {
  if (typeof value === 'number') {
    const p = parsePort(value);
    return { start: p, end: p };
  }
  if (typeof value !== 'string') throw new ConfigValueError(`expected a port range like "20000-39999", got ${showValue(value)}`);
  const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(value);
  if (!m) throw new ConfigValueError(`${showValue(value)} is not a port range; write it as "start-end", e.g. "20000-39999"`);
  const start = Number(m[1]);
  const end = m[2] === undefined ? start : Number(m[2]);
  if (start < 1 || start > 65535 || end < 1 || end > 65535) throw new ConfigValueError(`${showValue(value)} is outside the port numbers 1..65535`);
  if (start > end) throw new ConfigValueError(`${showValue(value)} starts after it ends (${start} > ${end})`);
  return { start, end };
}

const HOST_LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/i;

/** True for a DNS hostname (labels of letters, digits, `-`, `_`; ≤253 chars). */
export function isHostname(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false;
  const labels = (s.endsWith('.') ? s.slice(0, -1) : s).split('.');
  return labels.every((l) => HOST_LABEL.test(l)) && !/^\d+$/.test(labels[labels.length - 1]!);
}

/** A bare host: an IPv4 or IPv6 address (brackets optional) or a hostname. */
export function parseHost(value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw new ConfigValueError(`expected a host name or IP address, got ${showValue(value)}`);
  let h = value.trim();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (isIP(h) !== 0 || isHostname(h)) return h;
  throw new ConfigValueError(`${showValue(value)} is not a host name or IP address`);
}

/**
 * `host:port` with an IPv4 address, a hostname or a bracketed IPv6 address
 * (`[::1]:7000`). `defaultPort` makes the port optional. IPv6 hosts are
 * returned without brackets.
 */
export function parseHostPort(value: unknown, opts: { defaultPort?: number; allowZero?: boolean } = {}): HostPort {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ConfigValueError(`expected an address "host:port" (e.g. "127.0.0.1:7000" or "[::1]:7000"), got ${showValue(value)}`);
  }
  const text = value.trim();
  let host: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const m = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
    if (!m || isIP(m[1]!) !== 6) throw new ConfigValueError(`${showValue(value)} is not an address; IPv6 is written "[::1]:7000"`);
    host = m[1]!;
    portText = m[2];
  } else {
    const colons = text.split(':').length - 1;
    if (colons > 1) {
      throw new ConfigValueError(`${showValue(value)} is ambiguous; put an IPv6 address in brackets, e.g. "[::1]:7000"`);
    }
    if (colons === 1) {
      const i = text.indexOf(':');
      host = text.slice(0, i);
      portText = text.slice(i + 1);
    } else {
      host = text;
    }
    if (isIP(host) === 0 && !isHostname(host)) throw new ConfigValueError(`${showValue(value)}: "${host}" is not a host name or IP address`);
  }
  if (portText === undefined) {
    if (opts.defaultPort === undefined) throw new ConfigValueError(`${showValue(value)} has no port; write it as "host:port", e.g. "${host.includes(':') ? `[${host}]` : host}:7000"`);
    return { host, port: opts.defaultPort };
  }
  if (!/^\d+$/.test(portText)) throw new ConfigValueError(`${showValue(value)} has a bad port ${showValue(portText)}`);
  try {
    return { host, port: parsePort(portText, { allowZero: opts.allowZero ?? false }) };
  } catch (err) {
    throw new ConfigValueError(`${showValue(value)}: ${(err as Error).message}`);
  }
}

/** Formats a HostPort back to text (IPv6 in brackets). */
export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/**
 * A list of ports; items may be numbers or `start-end` range strings, which
 * are expanded. Result is sorted and de-duplicated.
 */
export function parsePortList(value: unknown): number[] {
  if (value === null) return [];
  if (!Array.isArray(value)) throw new ConfigValueError(`expected a list of ports, e.g. [22, 80, 443], got ${showValue(value)}`);
  const out = new Set<number>();
  value.forEach((item, i) => {
    try {
      if (typeof item === 'string' && item.includes('-')) {
        const r = parsePortRange(item);
        for (let p = r.start; p <= r.end; p++) out.add(p);
      } else {
        out.add(parsePort(item));
      }
    } catch (err) {
      throw new ConfigValueError(`item ${i}: ${(err as Error).message}`);
    }
  });
  return [...out].sort((a, b) => a - b);
}

/** The pino log levels accepted by `log_level` / `--log-level`. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export function parseLogLevel(value: unknown): string {
  if (typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value.trim().toLowerCase())) return value.trim().toLowerCase();
  throw new ConfigValueError(`${showValue(value)} is not a log level; use one of ${LOG_LEVELS.join(', ')}`);
}

/** Recursively freezes an object graph and returns it. */
export function deepFreeze<T>(obj: T): T {
  if (obj !== null && typeof obj === 'object' && !Object.isFrozen(obj)) {
    Object.freeze(obj);
    for (const v of Object.values(obj as Record<string, unknown>)) deepFreeze(v);
  }
  return obj;
}
