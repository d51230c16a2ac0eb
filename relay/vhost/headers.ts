/**
 * Header rewriting for the web proxy: hop-by-hop headers (RFC 9110 §7.6.1 and
 * the ones named in `Connection`) never cross it; requests gain
 * X-Forwarded-For/-Proto/-Host and, in `rewrite` mode, Host: localhost:<port>.
 * Works on node's raw header arrays ([name, value, name, value, …]) so case,
 * order and repeated headers reach the other side as sent.
 */

import { matchesLower } from './http-chars.js';

/** Always hop-by-hop, whatever `Connection` says. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/**
 * Never removed because `Connection` names them: message framing and routing.
 * (`Connection: content-length` once made the relay forward a body without its
 * length, which the app then read as a second request: request smuggling.)
 */
const NOT_HOP_BY_HOP = new Set(['host', 'content-length']);

/**
 * What a client claims about the hop before the relay: the relay is the TLS
 * edge, so it states these itself (X-Forwarded-For is appended to, the rest
 * dropped).
 */
export const RELAY_STATED: ReadonlySet<string> = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'x-real-ip']);

/** HOP_BY_HOP by name length, for comparing names in place (isHopByHopAt). */
const HOP_BY_LENGTH: string[][] = [];
for (const name of HOP_BY_HOP) (HOP_BY_LENGTH[name.length] ??= []).push(name);

/** True when text holds an always-hop-by-hop field name of `length` characters at `start`, in any case. */
export function isHopByHopAt(text: string, start: number, length: number): boolean {
  const names = HOP_BY_LENGTH[length];
  if (names === undefined) return false;
  for (const name of names) if (matchesLower(text, start, name)) return true;
  return false;
}

/**
 * True when a Connection value names only fields whose fate is fixed
 * anyway (always hop-by-hop, or never dropped for it): a head with only
 * such values can be forwarded line by line without these rules.
 */
export function namesOnlyFixedFields(value: string): boolean {
  if (value.length === 10 && matchesLower(value, 0, 'keep-alive')) return true; // the usual value
  for (const tok of value.split(',')) {
    const t = tok.trim().toLowerCase();
    if (t !== '' && !HOP_BY_HOP.has(t) && !NOT_HOP_BY_HOP.has(t)) return false;
  }
  return true;
}

/** The tokens listed in Connection headers (lowercase), beyond the fixed set. */
function connectionTokens(raw: string[]): Set<string> | null {
  let extra: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== 10 || name.toLowerCase() !== 'connection') continue;
    for (const tok of raw[i + 1]!.split(',')) {
      const t = tok.trim().toLowerCase();
      if (t && !HOP_BY_HOP.has(t) && !NOT_HOP_BY_HOP.has(t)) (extra ??= new Set()).add(t);
    }
  }
  return extra;
}

export interface ForwardInfo {
  /** The client's IP as the relay saw it. */
  clientIp: string;
  /** The Host the client asked for (with its port, as sent). */
  host: string;
  /** `localhost:<port>` when the Host header is rewritten, else null (kept). */
  rewriteHost: string | null;
  /** Keep `Connection: Upgrade` + `Upgrade` (WebSocket handshakes). */
  upgrade: string | null;
}

/** Request headers to send to the app; Content-Length is left out (the relay writes the framing itself). */
export function forwardRequestHeaders(raw: string[], info: ForwardInfo): string[] {
  const extra = connectionTokens(raw);
  const out: string[] = [];
  let xff: string | null = null;
  let host = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || (extra !== null && extra.has(lower))) continue;
    switch (lower) {
      case 'host':
        // One Host: the one the relay routed and checked access by (a second could steer the app elsewhere).
        if (!host) out.push(name, info.rewriteHost ?? raw[i + 1]!);
        host = true;
        continue;
      case 'x-forwarded-for':
        xff = xff === null ? raw[i + 1]! : `${xff}, ${raw[i + 1]!}`;
        continue;
      // The relay already answered 100 Continue itself.
      case 'expect':
      // Framing is the relay's: serializeRequestHead's `framing` says how long the body it sends is.
      case 'content-length':
        continue;
    }
    // The relay is the TLS edge: what the client claims about the hop is not true (its own address
    // is in X-Forwarded-For, which the relay appends to).
    if (RELAY_STATED.has(lower)) continue;
    out.push(name, raw[i + 1]!);
  }
  out.push('X-Forwarded-For', xff === null ? info.clientIp : `${xff}, ${info.clientIp}`, 'X-Forwarded-Proto', 'https', 'X-Forwarded-Host', info.host);
  if (info.upgrade !== null) out.push('Connection', 'Upgrade', 'Upgrade', info.upgrade);
  return out;
}

/** Response headers to send to the client. */
export function forwardResponseHeaders(raw: string[]): string[] {
  const extra = connectionTokens(raw);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(lower) || (extra !== null && extra.has(lower))) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

/**
 * Serialises a request head for a mux stream to the app (write it as
 * latin1, the encoding node's parser read it in); `framing` is an extra
 * header line such as `Transfer-Encoding: chunked\r\n`, or ''.
 */
export function serializeRequestHead(method: string, url: string, headers: string[], framing = ''): string {
  let s = `${method} ${url} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) s += `${headers[i]!}: ${headers[i + 1]!}\r\n`;
  return `${s}${framing}\r\n`;
}

/** Methods node's HTTP client sends without a Content-Length when they carry no body. */
const NO_BODY_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);

/**
 * The framing line of a request the relay sends (the client's Content-Length
 * header never passes through as such): the length the parser validated,
 * chunked, or, like node's HTTP client, Content-Length: 0 for a bodiless
 * POST/PUT/PATCH.
 */
export function requestFraming(method: string, contentLength: string | undefined, chunked: boolean): string {
  if (chunked) return 'Transfer-Encoding: chunked\r\n';
  if (contentLength !== undefined) return `Content-Length: ${contentLength}\r\n`;
  return NO_BODY_METHODS.has(method) ? '' : 'Content-Length: 0\r\n';
}
