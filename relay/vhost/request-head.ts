/**
 * A strict parser for the plainest HTTP/1.1 request heads, used by the fast
 * front (fast-front.ts). It accepts only what it is sure how every peer
 * frames: an origin-form request line ending in HTTP/1.1, header lines of
 * token names and visible-character values ended by CRLF, exactly one Host,
 * at most one all-digit Content-Length, no Transfer-Encoding, no Upgrade, no
 * Expect. Anything else — bare LF, obs-fold, a chunked body, HTTP/1.0, an
 * absolute-form target, a head over the size limit — is 'defer': the front
 * hands the untouched bytes to node:http, whose parser answers it (400, 431,
 * 100-continue, upgrades) exactly as before. So a request's end is never
 * decided differently here than by node's own parser: no request smuggling
 * through a looser reading. Pure: no I/O.
 */
import { METHODS as httpMethods } from 'node:http';
import { FIELD_VALUE, TCHAR, matchesLower } from './http-chars.js';
import { HOP_BY_HOP, RELAY_STATED, namesOnlyFixedFields } from './headers.js';

export interface RequestHead {
  method: string;
  /** Origin-form target (starts with '/'). */
  url: string;
  /** Name, value, name, value… as sent (node's rawHeaders). */
  rawHeaders: string[];
  /** Lower-case names; repeats joined like node does (the first kept for single-valued fields). */
  headers: Record<string, string>;
  /** Bytes of the head, blank line included. */
  length: number;
  /** Body bytes that follow (Content-Length; 0 without one). */
  contentLength: number;
  /** The client asked to close after this request (Connection: close). */
  close: boolean;
  /**
   * The header lines the relay passes to the app as they are (each with its
   * CRLF): all but Host, Content-Length, the hop-by-hop fields and the
   * X-Forwarded-* / Forwarded / X-Real-IP claims, which the relay states
   * itself (the rules of headers.ts forwardRequestHeaders). null when a
   * Connection header names further fields to drop: then those rules run.
   */
  forward: string | null;
}

export type HeadResult = RequestHead | 'incomplete' | 'defer';

/** Fields node keeps the first of when repeated (its IncomingMessage rules). */
const SINGLE = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

/** The methods node:http parses (http.METHODS), but CONNECT. */
const METHODS = new Set(httpMethods.filter((m) => m !== 'CONNECT'));

const HTTP11 = ' HTTP/1.1';

/** Bytes a..b of the head as a string: cut from `text` (the whole head) when there is one, else converted. */
function cut(buf: Buffer, text: string | null, a: number, b: number): string {
  return text !== null ? text.slice(a, b) : buf.toString('latin1', a, b);
}
const CRLF2 = Buffer.from('\r\n\r\n');
/** Longest Content-Length taken (15 digits: below 2^53). */
const MAX_LENGTH_DIGITS = 15;

/**
 * Parses the head at the start of `buf`. 'incomplete' while no blank line
 * arrived within `maxBytes`; 'defer' for anything the front leaves to node:http.
 */
export function parseRequestHead(buf: Buffer, maxBytes: number): HeadResult {
  const limit = Math.min(buf.length, maxBytes);
  // A whole head is read into one string, and names and values are cut out of it (a conversion
  // per field costs more than the parse). A partial head (incomplete, or one to defer early) is not.
  const blankAt = buf.indexOf(CRLF2);
  const text = blankAt >= 0 && blankAt + 4 <= limit ? buf.toString('latin1', 0, blankAt + 4) : null;
  // The request line.
  let i = 0;
  while (i < limit && TCHAR[buf[i]!] === 1) i++;
  if (i === limit) return buf.length >= maxBytes ? 'defer' : 'incomplete';
  if (i === 0 || buf[i] !== 0x20) return 'defer';
  const method = cut(buf, text, 0, i);
  if (!METHODS.has(method)) return 'defer'; // node answers 400 to methods it does not know; CONNECT is a tunnel
  const urlStart = ++i;
  if (i < limit && buf[i] !== 0x2f) return 'defer'; // origin-form only
  while (i < limit && buf[i]! > 0x20 && buf[i]! < 0x7f) i++;
  if (i === limit) return buf.length >= maxBytes ? 'defer' : 'incomplete';
  const url = cut(buf, text, urlStart, i);
  for (let k = 0; k < HTTP11.length; k++, i++) {
    if (i === limit) return buf.length >= maxBytes ? 'defer' : 'incomplete';
    if (buf[i] !== HTTP11.charCodeAt(k)) return 'defer';
  }
  const eol = crlfAt(buf, i, limit);
  if (eol !== 1) return eol === 0 ? (buf.length >= maxBytes ? 'defer' : 'incomplete') : 'defer';
  i += 2;
  // Header lines, up to the blank line.
  const rawHeaders: string[] = [];
  const headers: Record<string, string> = {};
  let contentLength = -1;
  let hosts = 0;
  let close = false;
  // The forwarded lines: runs of kept lines are cut out of buf once, when a dropped line ends a run.
  let forward: string | null = '';
  let runStart = i;
  for (;;) {
    const blank = crlfAt(buf, i, limit);
    if (blank === 1) {
      if (forward !== null && i > runStart) forward += cut(buf, text, runStart, i);
      i += 2;
      break;
    }
    const lineStart = i;
    if (blank === 0) return buf.length >= maxBytes ? 'defer' : 'incomplete';
    const nameStart = i;
    while (i < limit && TCHAR[buf[i]!] === 1) i++;
    if (i === limit) return buf.length >= maxBytes ? 'defer' : 'incomplete';
    if (i === nameStart || buf[i] !== 0x3a) return 'defer'; // no space before the colon, no empty name
    const name = cut(buf, text, nameStart, i);
    i++;
    while (i < limit && (buf[i] === 0x20 || buf[i] === 0x09)) i++;
    const valueStart = i;
    while (i < limit && FIELD_VALUE[buf[i]!] === 1) i++;
    const end = crlfAt(buf, i, limit);
    if (end !== 1) return end === 0 ? (buf.length >= maxBytes ? 'defer' : 'incomplete') : 'defer';
    let valueEnd = i;
    while (valueEnd > valueStart && (buf[valueEnd - 1] === 0x20 || buf[valueEnd - 1] === 0x09)) valueEnd--;
    const value = cut(buf, text, valueStart, valueEnd);
    i += 2;
    // A continuation line (obs-fold) starts with SP/HTAB: node rejects it; so do we, through node.
    if (i < limit && (buf[i] === 0x20 || buf[i] === 0x09)) return 'defer';
    const lower = name.toLowerCase();
    let drop = false;
    switch (lower) {
      case 'host':
        hosts++;
        drop = true;
        break;
      case 'content-length':
        if (contentLength !== -1 || value.length === 0 || value.length > MAX_LENGTH_DIGITS || !/^[0-9]+$/.test(value)) return 'defer';
        contentLength = Number(value);
        drop = true;
        break;
      case 'transfer-encoding':
      case 'upgrade':
      case 'expect':
        return 'defer';
      case 'connection':
        // "keep-alive", the usual value, is not "close" and names no other field.
        if (value.length !== 10 || !matchesLower(value, 0, 'keep-alive')) {
          if (/(?:^|,)[ \t]*close[ \t]*(?:,|$)/i.test(value)) close = true;
          if (!namesOnlyFixedFields(value)) forward = null;
        }
        drop = true;
        break;
      default:
        // The other hop-by-hop fields and the claims the relay states itself (headers.ts).
        drop = HOP_BY_HOP.has(lower) || RELAY_STATED.has(lower);
    }
    if (drop) {
      if (forward !== null && lineStart > runStart) forward += cut(buf, text, runStart, lineStart);
      runStart = i;
    }
    rawHeaders.push(name, value);
    const had = headers[lower];
    if (had === undefined) headers[lower] = value;
    else if (!SINGLE.has(lower)) headers[lower] = `${had}${lower === 'cookie' ? '; ' : ', '}${value}`;
  }
  if (hosts !== 1) return 'defer';
  return { method, url, rawHeaders, headers, length: i, contentLength: contentLength === -1 ? 0 : contentLength, close, forward };
}

/** 1: CRLF at i; 0: not enough bytes to tell; -1: something else (a bare LF or CR included). */
function crlfAt(buf: Buffer, i: number, limit: number): 1 | 0 | -1 {
  if (i >= limit) return 0;
  if (buf[i] !== 0x0d) return -1;
  if (i + 1 >= limit) return 0;
  return buf[i + 1] === 0x0a ? 1 : -1;
}
